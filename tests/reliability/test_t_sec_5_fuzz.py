"""T-SEC-5: malformed input robustness.

The API against its own OpenAPI schema: schemathesis sends every operation generated requests, valid and
invalid, with real credentials; no answer may be a 5xx or fall outside what the schema documents. The
inbound callback endpoints against malformed notifications: thousands of bodies that are no notification
(random bytes, deep nesting, ``1e309``, wrong types, NUL, lone surrogates, a megabyte), posted unsigned and
validly signed with the sandbox wallet's key; none may be a 5xx or change an order, payment, refund or
registration. The objects the requests name are real and live at the sandbox wallet over HTTP, so an
operation that calls the wallet calls it.
"""

from __future__ import annotations

import base64
import collections
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.db.models import F
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from apps.accounts.services import api_key_create
from apps.core.money import Money
from apps.core.tenancy import PrincipalKind
from apps.merchants.models import Registration, RegistrationEvent
from apps.miniprograms.models import Feature
from apps.miniprograms.services import feature_set, product_create
from apps.payments.models import Order, Payment, PaymentEvent, PreAuthorization, Refund
from apps.sandbox.services import wallet_private_key
from apps.webhooks.models import WebhookEvent
from tests.callbacks.inbox import drain_inbox
from tests.callbacks.test_forgeries import _signed_headers
from tests.conftest import NIGHTLY, session_of
from tests.payments.conftest import shop, wallet  # noqa: F401 - the merchant ready to take payments
from tests.payments.test_orders import _order
from tests.payments.test_preauthorizations import _authorised
from tests.payments.test_refunds_and_cancels import _paid_order
from tests.reliability import fuzz_api, fuzz_notifications
from tests.sandbox.conftest import join_notifiers

pytestmark = pytest.mark.reliability

#: Generated requests per operation in each generation mode (positive, negative).
EXAMPLES_PER_MODE = 100 if NIGHTLY else 15
#: Malformed notification bodies, spread over the inbound endpoints.
NIGHTLY_NOTIFICATIONS = 20_000
NOTIFICATIONS = NIGHTLY_NOTIFICATIONS if NIGHTLY else 5_000
#: The classic gateway app id of merchant A1 at the sandbox (``ready_mini_program`` for ``shop-app``).
CLASSIC_APP_ID = "classic-shop-app"
#: Just under and just over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (1 MiB).
MEGABYTE_BODIES = [b'{"paymentId": "' + b"9" * size + b'"}' for size in (1_000_000, 1_100_000)]


# --- the API against its schema -------------------------------------------------------------------------


@pytest.fixture
def api_world(world, api, shop, wallet) -> tuple[list[fuzz_api.Credential], fuzz_api.Known]:  # noqa: F811
    """Credentials of every kind for merchant A1, and real objects of A1 for the generated requests to name:
    an order awaiting payment and a paid one, an authorised pre-authorization, the mini program, a product
    and a spare API key."""
    merchant = world.a.merchants[0].merchant
    product = product_create(merchant=merchant, sku="flat-white", name="Flat white", price=Money(450, "USD"))
    feature_set(mini_program=shop, feature=Feature.PRE_AUTHORIZATION, enabled=True)
    pre_authorization = _authorised(api.as_key(world.a.merchants[0].key), wallet, shop)
    known = fuzz_api.Known(
        path_ids={
            "order_id": [_order(api, world).json()["id"], _paid_order(api, world)[0]],
            "preauthorization_id": [pre_authorization["id"]],
            "mini_program_id": [shop.public_id],
            "product_id": [product.public_id],
            "key_id": [api_key_create(isv=world.a.isv, merchant=merchant, name="spare").api_key.public_id],
        },
        fields={
            "mini_program": [shop.app_id],
            "app_id": [shop.app_id],
            "sku": [product.sku],
            "super_app": [wallet.super_app.code],
            "currency": ["USD"],
            "default_currency": ["USD"],
        },
    )
    session, _ = session_of(shop, "fuzz-customer")
    credentials = [
        fuzz_api.Credential(PrincipalKind.MERCHANT_KEY, {"Authorization": f"Bearer {world.a.merchants[0].key}"}),
        fuzz_api.Credential(
            PrincipalKind.ISV_KEY, {"Authorization": f"Bearer {world.a.key}", "Merchant-Id": merchant.public_id}
        ),
        fuzz_api.Credential(PrincipalKind.ISV_KEY, {"Authorization": f"Bearer {world.a.key}"}, for_merchant=False),
        fuzz_api.Credential(PrincipalKind.MINI_PROGRAM_USER, {"Authorization": f"Bearer {session}"}),
        fuzz_api.Credential(PrincipalKind.ANONYMOUS, {}, for_merchant=False),
    ]
    join_notifiers()
    return credentials, known


def test_every_operation_answers_within_its_schema_and_never_with_a_5xx(api_world, figures):
    credentials, known = api_world
    operations = [result.ok() for result in fuzz_api.load_schema().get_all_operations()]
    tally = fuzz_api.Tally()
    for operation in operations:
        for mode in GenerationMode:
            fuzz_api.fuzz_operation(
                operation,
                mode,
                examples=EXAMPLES_PER_MODE,
                credentials=credentials,
                known=known,
                tally=tally,
                derandomize=not NIGHTLY,
            )
    answered = {label for label, _ in tally.statuses}
    assert answered == {operation.label for operation in operations}
    assert not tally.failures, tally.report()
    figures.record(
        "T-SEC-5",
        f"schemathesis {len(operations)} operations, {tally.cases} cases ({EXAMPLES_PER_MODE} per operation in "
        f"each of positive and negative mode), "
        f"{tally.server_errors} 5xx, {tally.schema_violations} schema violations",
    )


# --- malformed notifications ----------------------------------------------------------------------------


def _ledger() -> dict[str, list[dict]]:
    """What a notification could change, as it is now, by model: every order, payment, refund, pre-authorization
    and registration, every status transition (an anomaly's record, from a status to itself, is evidence of a
    contradicting message, not a change) and what merchants were told."""
    models = (Order, Payment, Refund, PreAuthorization, Registration, WebhookEvent)
    rows = {model.__name__: list(model.objects.unscoped().order_by("pk").values()) for model in models}
    for model in (PaymentEvent, RegistrationEvent):
        transitions = model.objects.unscoped().exclude(from_status=F("to_status")).order_by("pk")
        rows[model.__name__] = list(transitions.values())
    return rows


def _classic_signed(fields: dict[str, str]) -> dict[str, str]:
    """Classic fields with the wallet's RSA2 ``sign`` over every field but ``sign`` and ``sign_type``, sorted,
    empty values kept (protocol §8.4) — whatever the fields hold, lone surrogates included."""
    text = "&".join(f"{key}={value}" for key, value in sorted(fields.items()))
    raw = wallet_private_key().sign(text.encode("utf-8", "surrogatepass"), padding.PKCS1v15(), hashes.SHA256())
    return {**fields, "sign_type": "RSA2", "sign": base64.b64encode(raw).decode()}


@pytest.fixture
def notification_templates(world, api, shop, wallet) -> dict[str, object]:  # noqa: F811
    """A well-formed notification per endpoint about a real object of merchant A1 at the sandbox: its order
    awaiting payment, a refund of its paid order, its verified registration (given a request id)."""
    pending = Payment.objects.unscoped().get(order__public_id=_order(api, world).json()["id"])
    paid_id, client = _paid_order(api, world)
    refund = client.post(f"/api/v1/orders/{paid_id}/refunds", {"amount": 400}, format="json").json()
    refund_request_id = Refund.objects.unscoped().get(public_id=refund["id"]).refund_request_id
    Registration.objects.unscoped().filter(merchant=shop.merchant, super_app=wallet.super_app).update(
        wallet_request_id="reg_fuzz"
    )
    join_notifiers()  # the sandbox's own notifications of the payment and refund, applied before the run
    drain_inbox()
    return {
        "payments/notify": fuzz_notifications.Template(
            body={
                "paymentRequestId": pending.payment_request_id,
                "paymentId": "2026112200000001",
                "paymentResult": {"resultCode": "SUCCESS", "resultStatus": "S"},
                "paymentAmount": {"currency": "USD", "value": str(pending.amount)},
                "paymentTime": "2026-11-22T10:00:00+08:00",
            },
            strict=(
                ("paymentRequestId",),
                ("paymentId",),
                ("paymentResult",),
                ("paymentResult", "resultStatus"),
                ("paymentAmount",),
            ),
            amounts=(("paymentAmount",),),
            enums=(("paymentResult", "resultStatus"),),
        ),
        "refunds/notify": fuzz_notifications.Template(
            body={
                "refundRequestId": refund_request_id,
                "refundId": "2026112200000002",
                "refundStatus": "FAIL",
                "refundAmount": {"currency": "USD", "value": "400"},
            },
            strict=(("refundRequestId",), ("refundId",), ("refundStatus",), ("refundAmount",)),
            amounts=(("refundAmount",),),
            enums=(("refundStatus",),),
        ),
        "merchants/notify-registration": fuzz_notifications.Template(
            body={
                "registrationRequestId": "reg_fuzz",
                "registrationResult": {"registrationStatus": "REJECTED", "rejectReason": "blurred scan"},
            },
            strict=(("registrationResult",), ("registrationResult", "registrationStatus")),
            enums=(("registrationResult", "registrationStatus"),),
        ),
        "classic/notify": {
            "app_id": CLASSIC_APP_ID,
            "charset": "utf-8",
            "version": "1.0",
            "notify_type": "trade_status_sync",
            "notify_id": "fuzz-notify",
            "notify_time": "2026-11-22 18:00:00",
            "trade_no": "2026112222001400000000000001",
            "out_trade_no": pending.payment_request_id,
            "total_amount": Money(pending.amount, "USD").to_major_string(),
            "trans_currency": "USD",
            "trade_status": "TRADE_SUCCESS",
        },
    }


def _unsigned_headers(path: str, template: fuzz_notifications.Template) -> st.SearchStrategy[dict[str, str]]:
    """No signature, a made-up one, or the wallet's real signature of another body (the template's)."""
    printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
    return st.one_of(
        st.just({}),
        st.fixed_dictionaries({"Client-Id": printable, "Request-Time": printable, "Signature": printable}),
        st.just(_signed_headers(path, json.dumps(template.body).encode())),
    )


def test_malformed_notifications_are_refused_and_change_nothing(notification_templates, wallet, figures):  # noqa: F811
    token = wallet.super_app.callback_token
    endpoints = sorted(notification_templates)
    client = Client(raise_request_exception=False)  # one client: building one loads the middleware again
    before = _ledger()
    answers: collections.Counter = collections.Counter()
    server_errors: dict[tuple[str, bool], bytes] = {}

    def post(endpoint: str, signed: bool, body: bytes, headers: dict[str, str]) -> None:
        content_type = "application/x-www-form-urlencoded" if endpoint == "classic/notify" else "application/json"
        meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
        response = client.post(f"/callbacks/{token}/{endpoint}", body, content_type=content_type, **meta)
        answers[endpoint, signed, response.status_code] += 1
        if response.status_code >= 500:
            server_errors.setdefault((endpoint, signed), body[:2000])

    # Built once: Hypothesis caches what it learns about a strategy on the strategy object.
    classic = notification_templates["classic/notify"]
    broken_classic_fields = fuzz_notifications.broken_classic_fields(classic)
    form_bodies = fuzz_notifications.form_bodies(classic)
    json_bodies = {
        endpoint: fuzz_notifications.json_bodies(template)
        for endpoint, template in notification_templates.items()
        if endpoint != "classic/notify"
    }
    unsigned_headers = {
        endpoint: _unsigned_headers(f"/callbacks/{token}/{endpoint}", notification_templates[endpoint])
        for endpoint in json_bodies
    }

    @settings(
        max_examples=NOTIFICATIONS,
        deadline=None,
        database=None,
        derandomize=not NIGHTLY,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(endpoint=st.sampled_from(endpoints), signed=st.booleans(), data=st.data())
    def deliver(endpoint, signed, data):
        if endpoint == "classic/notify":  # signed inside the body
            if signed:
                body = fuzz_notifications.form_encode(_classic_signed(data.draw(broken_classic_fields)))
            else:
                body = data.draw(form_bodies)
            post(endpoint, signed, body, {})
        else:
            path = f"/callbacks/{token}/{endpoint}"
            body = data.draw(json_bodies[endpoint])
            headers = _signed_headers(path, body) if signed else data.draw(unsigned_headers[endpoint])
            post(endpoint, signed, body, headers)

    deliver()
    for body in MEGABYTE_BODIES:
        path = f"/callbacks/{token}/payments/notify"
        post("payments/notify", True, body, _signed_headers(path, body))
    drain_inbox()
    after = _ledger()
    changed = [name for name, rows in after.items() if rows != before[name]]
    total = sum(answers.values())
    signed_count = sum(count for (_, signed, _), count in answers.items() if signed)
    refused = sum(count for (_, _, status), count in answers.items() if 400 <= status < 500)
    failed = sum(count for (_, _, status), count in answers.items() if status >= 500)
    acknowledged = total - refused - failed
    differing = {name: [row for row in after[name] if row not in before[name]] for name in changed}
    assert (failed, changed) == (0, []), json.dumps({"5xx": [*server_errors.items()], "rows": differing}, default=str)
    scale = "nightly" if NIGHTLY else f"CI-sized, {NIGHTLY_NOTIFICATIONS} nightly"
    figures.record(
        "T-SEC-5",
        f"{total} malformed notifications ({scale}; {len(endpoints)} endpoints, {signed_count} validly signed), "
        f"{refused} refused, {acknowledged} acknowledged with no effect, {failed} 5xx, {len(changed)} state changes",
    )
