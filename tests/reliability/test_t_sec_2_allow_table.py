"""T-SEC-2: every route the URL resolver serves, every HTTP method and every role against the allow table in
``allow_table.py`` (OWASP API5, function-level authorization), deny by default.

Each cell is a real request that would succeed if the role were allowed: the role's credential, tenant A's
real objects in the path (an order of A1 owned by the session's user, A1's product, keys and mini program)
and a valid body. The allowed cells must all reach a 2xx (or a redirect that is not to the sign-in page),
each on an object of its own where the call uses one up (a pending order to cancel, a key to revoke); every
other cell must be refused (see ``allow_table``) — never a 2xx, never a 5xx. Calls that go on to the wallet
(orders, cancels, refunds, captures, releases, registrations, sessions) reach the sandbox over real HTTP.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time
import urllib.parse
from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django_otp.oath import totp
from rest_framework.test import APIClient

from apps.accounts import second_factor
from apps.accounts.services import api_key_create
from apps.merchants.models import Merchant
from apps.merchants.services import business_license_save, merchant_create, wallet_credential_create
from apps.miniprograms.models import Feature, MiniProgram, MiniProgramStatus, Product
from apps.miniprograms.services import feature_set, mini_program_create, mini_program_update
from apps.payments.models import Payment
from apps.sandbox.models import ClassicOrder
from apps.superapps.models import SuperApp, TradePayMode
from tests.conftest import _test_key_pair
from tests.merchants.test_registrations import PDF, license_fields
from tests.payments.conftest import shop, wallet  # noqa: F401 - A1 at the sandbox wallet, the wallet itself
from tests.payments.test_preauthorizations import _authorise
from tests.reliability.allow_table import ALLOW, METHODS, NOBODY, REFUSED_IN_BODY, Caller
from tests.superapps.test_client_against_sandbox import _pay_at_cashier

pytestmark = pytest.mark.reliability

SIGN_IN = "/admin/login/"
#: What a refused call may answer (besides a redirect to the sign-in page).
REFUSALS = {401, 403, 404, 405}


@dataclasses.dataclass
class Call:
    """One request, before the role's credential is added."""

    path: str
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    #: The merchant the call is about: the merchant key used is its key, and Merchant-Id names it.
    merchant: Merchant | None = None


def _json(path: str, payload: dict, **options) -> Call:
    return Call(path, json.dumps(payload).encode(), **options)


def _form(path: str, payload: dict) -> Call:
    return Call(path, urllib.parse.urlencode(payload).encode(), "application/x-www-form-urlencoded")


class TenantA:
    """Tenant A's objects the calls name: merchant A1 verified at the sandbox, its mini program ``shop-app``
    with a user session, a pending and a paid order of that user, an authorised pre-authorization in each wire
    variant, keys, and merchants at each onboarding step. The ``new_*`` methods make a fresh object for an
    allowed call that uses one up; refused calls are all sent at the shared ones (which would succeed)."""

    def __init__(self, world, sandbox, mini_program):
        self.world, self.wallet, self.shop = world, sandbox, mini_program
        self.isv = world.a.isv
        self.merchant = world.a.merchants[0].merchant
        self._numbers = itertools.count(1)
        self._merchant_keys = {self.merchant.pk: world.a.merchants[0].key}
        feature_set(mini_program=mini_program, feature=Feature.PRE_AUTHORIZATION, enabled=True)
        rentals = mini_program_create(
            merchant=self.merchant,
            super_app=sandbox.super_app,
            app_id="demo-rentals-app",  # a demo mini program, so that /demo/<app_id>/ shows it
            name="Rentals",
            trade_pay_mode=TradePayMode.ORDER_STR,
            default_currency="USD",
        ).mini_program
        self.rentals = mini_program_update(mini_program=rentals, status=MiniProgramStatus.PUBLISHED)
        feature_set(mini_program=self.rentals, feature=Feature.PRE_AUTHORIZATION, enabled=True)
        started = self._api(None).post(
            "/api/v1/sessions", {"app_id": mini_program.app_id, "auth_code": self.auth_code()}, format="json"
        )
        assert started.status_code == 201, started.json()
        self.session = started.json()["token"]
        self.mini_program = MiniProgram.objects.unscoped().get(merchant=self.merchant, app_id="canary-app-a1")
        self.product = Product.objects.unscoped().get(merchant=self.merchant, sku="canary-sku-a1")

        self.pending_order = self.new_order()
        self.cashier_path = urllib.parse.urlsplit(self.pending_order["trade_pay"]["paymentUrl"]).path
        self.pending_payment_request_id = (
            Payment.objects.unscoped().get(order__public_id=self.pending_order["id"]).payment_request_id
        )
        self.paid_order = self.new_order()
        _pay_at_cashier(self.paid_order["trade_pay"]["paymentUrl"])
        self._refreshed(f"/api/v1/orders/{self.paid_order['id']}", "paid")
        self.held = self.new_preauthorization()
        frozen = self._api(self._merchant_keys[self.merchant.pk]).post(
            "/api/v1/preauthorizations",
            {"mini_program": self.rentals.app_id, "amount": 5000, "currency": "USD", "description": "T-SEC-2"},
            format="json",
        )
        self.order_str = frozen.json()["trade_pay"]["orderStr"]
        _authorise(sandbox, frozen.json()["trade_pay"])
        self.frozen = self._refreshed(f"/api/v1/preauthorizations/{frozen.json()['id']}", "authorized")
        self.wallet_no = ClassicOrder.objects.get(out_no=self.frozen["out_order_no"]).wallet_no

        self.merchant_api_key = self.new_api_key(isv_level=False)
        self.isv_api_key = self.new_api_key(isv_level=True)
        self.unsubmitted = self.new_merchant_to_submit()
        self.spare_super_app = self.new_super_app()

    def number(self) -> int:
        return next(self._numbers)

    def _api(self, secret: str | None) -> APIClient:
        client = APIClient()
        if secret:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    def _refreshed(self, path: str, status: str) -> dict:
        body = self._api(self._merchant_keys[self.merchant.pk]).get(f"{path}?refresh=true").json()
        assert body["status"] == status, body
        return body

    def merchant_key(self, merchant: Merchant) -> str:
        if merchant.pk not in self._merchant_keys:
            self._merchant_keys[merchant.pk] = api_key_create(isv=self.isv, merchant=merchant, name="T-SEC-2").secret
        return self._merchant_keys[merchant.pk]

    def order_body(self) -> dict:
        """An order from the catalogue: what a user session may send, and a key too."""
        items = [{"sku": self.product.sku, "quantity": 1}]
        return {"mini_program": self.shop.app_id, "items": items, "description": "T-SEC-2"}

    def new_order(self) -> dict:
        """A pending order of the session's user (so every role acting for A1 may reach it)."""
        created = self._api(self.session).post("/api/v1/orders", self.order_body(), format="json")
        assert created.status_code == 201, created.json()
        return created.json()

    def new_preauthorization(self) -> dict:
        """An authorised pre-authorization of the session's user, in the cashier (paymentUrl) variant."""
        created = self._api(self.session).post("/api/v1/preauthorizations", self.order_body(), format="json")
        assert created.status_code == 201, created.json()
        _authorise(self.wallet, created.json()["trade_pay"])
        return self._refreshed(f"/api/v1/preauthorizations/{created.json()['id']}", "authorized")

    def auth_code(self) -> str:
        """What ``my.getAuthCode`` gives the mini program: asked of the sandbox in-process, as it is only the
        platform's call to ``applyToken`` that matters here."""
        return Client().get("/sandbox/authcode", {"appId": self.shop.app_id}).json()["authCode"]

    def new_api_key(self, *, isv_level: bool):
        return api_key_create(isv=self.isv, merchant=None if isv_level else self.merchant, name="T-SEC-2").api_key

    def new_merchant(self) -> Merchant:
        return merchant_create(isv=self.isv, name=f"T-SEC-2 merchant {self.number()}")

    def new_merchant_to_submit(self) -> Merchant:
        """A merchant with a license and a credential known to the sandbox, not yet submitted for review."""
        merchant = self.new_merchant()
        business_license_save(merchant=merchant, fields=license_fields(), document=_document())
        credential = wallet_credential_create(
            isv=self.isv, merchant=merchant, super_app=self.wallet.super_app, client_id=f"t-sec-2-{self.number()}"
        )
        self.wallet.register(credential)
        return merchant

    def new_super_app(self) -> SuperApp:
        """A super app nobody of tenant A has credentials for yet."""
        number = self.number()
        return SuperApp.objects.create(
            code=f"t-sec-2-{number}",
            name=f"T-SEC-2 wallet {number}",
            gateway_base_url="https://wallet.invalid/api",
            wallet_public_key_pem=_test_key_pair()[1],
        )

    def second_factor_code(self, caller: Caller) -> str:
        """The current code of the authenticator a staff member is setting up (anyone else has none)."""
        user = self.staff.get(caller)
        if user is None:
            return "000000"
        device = second_factor.authenticator_pending(user)
        return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"

    @property
    def staff(self) -> dict:
        return {
            Caller.MERCHANT_STAFF: self.world.a.merchants[0].staff,
            Caller.ISV_STAFF: self.world.a.staff,
            Caller.OPERATOR: self.world.operator,
        }


def _document() -> SimpleUploadedFile:
    return SimpleUploadedFile("license.pdf", PDF, content_type="application/pdf")


# --- how to call each route ------------------------------------------------------------------------------
# (tenant, caller, fresh) -> Call; ``fresh``: the call is allowed and may use its object up, so it gets its own.
Builder = Callable[[TenantA, Caller, bool], Call]


def _license(t: TenantA, caller: Caller, fresh: bool) -> Call:
    fields = {key: str(value) for key, value in license_fields().items()}
    body = encode_multipart(BOUNDARY, {**fields, "document": _document()})
    merchant = t.new_merchant() if fresh else t.unsubmitted
    return Call("/api/v1/merchant/license", body, MULTIPART_CONTENT, merchant=merchant)


def _registrations(t: TenantA, caller: Caller, fresh: bool) -> Call:
    merchant = t.new_merchant_to_submit() if fresh else t.unsubmitted
    return _json("/api/v1/merchant/registrations", {"super_app": t.wallet.super_app.code}, merchant=merchant)


def _wallet_credentials(t: TenantA, caller: Caller, fresh: bool) -> Call:
    super_app = t.new_super_app() if fresh else t.spare_super_app
    return _json("/api/v1/wallet-credentials", {"super_app": super_app.code, "client_id": f"t-sec-2-{t.number()}"})


def _api_key(t: TenantA, caller: Caller, fresh: bool) -> Call:
    isv_level = caller is Caller.ISV_KEY  # an ISV key naming no merchant sees the ISV's own keys
    key = t.new_api_key(isv_level=isv_level) if fresh else (t.isv_api_key if isv_level else t.merchant_api_key)
    return Call(f"/api/v1/api-keys/{key.public_id}")


def _mini_programs(t: TenantA, caller: Caller, fresh: bool) -> Call:
    body = {
        "super_app": t.wallet.super_app.code,
        "app_id": f"t-sec-2-app-{t.number()}",
        "name": "T-SEC-2",
        "trade_pay_mode": TradePayMode.PAYMENT_URL,
        "default_currency": "USD",
    }
    return _json("/api/v1/mini-programs", body)


def _mini_program(suffix: str, body: dict) -> Builder:
    return lambda t, caller, fresh: _json(f"/api/v1/mini-programs/{t.mini_program.public_id}{suffix}", body)


def _products(t: TenantA, caller: Caller, fresh: bool) -> Call:
    body = {"sku": f"t-sec-2-{t.number()}", "name": "T-SEC-2", "price": {"amount": 100, "currency": "USD"}}
    return _json("/api/v1/products", body)


def _about(collection: str, shared: str, suffix: str, body: dict) -> Builder:
    """A call about one of tenant A's shared payment objects (``shared``: the ``TenantA`` attribute holding it)."""
    return lambda t, caller, fresh: _json(f"/api/v1/{collection}/{getattr(t, shared)['id']}{suffix}", body)


def _cancel(t: TenantA, caller: Caller, fresh: bool) -> Call:
    order = t.new_order() if fresh else t.pending_order
    return _json(f"/api/v1/orders/{order['id']}/cancel", {})


def _session(t: TenantA, caller: Caller, fresh: bool) -> Call:
    return _json("/api/v1/sessions", {"app_id": t.shop.app_id, "auth_code": t.auth_code()})


def _notification(path: str) -> Builder:
    """What the wallet would send about the pending order's payment, unsigned: none of the roles holds its key."""

    def build(t: TenantA, caller: Caller, fresh: bool) -> Call:
        body = {
            "paymentRequestId": t.pending_payment_request_id,
            "paymentResult": {"resultCode": "SUCCESS", "resultStatus": "S"},
            "paymentAmount": {"currency": "USD", "value": str(t.pending_order["amount"])},
        }
        headers = {"Client-Id": f"client-{t.shop.app_id}", "Request-Time": timezone.now().isoformat()}
        return _json(f"/callbacks/{t.wallet.super_app.callback_token}/{path}", body, headers=headers)

    return build


def _classic_notification(t: TenantA, caller: Caller, fresh: bool) -> Call:
    fields = {"notify_type": "trade_status_sync", "out_trade_no": t.pending_order["id"], "trade_status": "SUCCESS"}
    return _form(f"/callbacks/{t.wallet.super_app.callback_token}/classic/notify", fields)


def _rental_stop(t: TenantA, caller: Caller, fresh: bool) -> Call:
    pre_authorization = t.new_preauthorization() if fresh else t.held
    return _json(f"/demo/rentals/{pre_authorization['id']}/stop", {})


def _merchant_webhook(t: TenantA, caller: Caller, fresh: bool) -> Call:
    headers = {"Webhook-Id": "msg_t_sec_2", "Webhook-Timestamp": str(int(time.time()))}
    return _json(f"/demo/merchant-webhooks/{t.rentals.app_id}", {"type": "order.paid"}, headers=headers)


def _settlement_file(t: TenantA, caller: Caller, fresh: bool) -> Call:
    return Call(f"/sandbox/settlements/client-{t.shop.app_id}/{timezone.localdate().isoformat()}.csv")


CALLS: dict[str, Builder] = {
    "admin/second-factor/": lambda t, caller, fresh: _form(
        "/admin/second-factor/", {"code": t.second_factor_code(caller)}
    ),
    "api/v1/merchant/license": _license,
    "api/v1/merchant/registrations": _registrations,
    "api/v1/merchants": lambda t, caller, fresh: _json("/api/v1/merchants", {"name": f"T-SEC-2 {t.number()}"}),
    "api/v1/wallet-credentials": _wallet_credentials,
    "api/v1/api-keys": lambda t, caller, fresh: _json("/api/v1/api-keys", {"name": "T-SEC-2"}),
    "api/v1/api-keys/<public_id:key_id>": _api_key,
    "api/v1/mini-programs": _mini_programs,
    "api/v1/mini-programs/<public_id:mini_program_id>": lambda t, caller, fresh: _json(
        f"/api/v1/mini-programs/{t.mini_program.public_id}", {"name": t.mini_program.name}
    ),
    "api/v1/mini-programs/<public_id:mini_program_id>/features": _mini_program(
        "/features", {"feature": Feature.PRE_AUTHORIZATION, "enabled": True}
    ),
    "api/v1/mini-programs/<public_id:mini_program_id>/webhook-secret": _mini_program("/webhook-secret", {}),
    "api/v1/products": _products,
    "api/v1/products/<public_id:product_id>": lambda t, caller, fresh: _json(
        f"/api/v1/products/{t.product.public_id}", {"name": t.product.name}
    ),
    "api/v1/orders": lambda t, caller, fresh: _json("/api/v1/orders", t.order_body()),
    "api/v1/orders/<public_id:order_id>": _about("orders", "pending_order", "", {}),
    "api/v1/orders/<public_id:order_id>/cancel": _cancel,
    "api/v1/orders/<public_id:order_id>/client-result": _about(
        "orders", "pending_order", "/client-result", {"result_code": "6001"}
    ),
    "api/v1/orders/<public_id:order_id>/refunds": _about("orders", "paid_order", "/refunds", {"amount": 100}),
    "api/v1/preauthorizations": lambda t, caller, fresh: _json("/api/v1/preauthorizations", t.order_body()),
    "api/v1/preauthorizations/<public_id:preauthorization_id>": _about("preauthorizations", "held", "", {}),
    "api/v1/preauthorizations/<public_id:preauthorization_id>/capture": _about(
        "preauthorizations", "held", "/capture", {"amount": 100, "final": False}
    ),
    # Released in part: the classic (orderStr) freeze allows it, the cashier variant only whole.
    "api/v1/preauthorizations/<public_id:preauthorization_id>/release": _about(
        "preauthorizations", "frozen", "/release", {"amount": 100}
    ),
    "api/v1/sessions": _session,
    "callbacks/<str:callback_token>/payments/notify": _notification("payments/notify"),
    "callbacks/<str:callback_token>/refunds/notify": _notification("refunds/notify"),
    "callbacks/<str:callback_token>/merchants/notify-registration": _notification("merchants/notify-registration"),
    "callbacks/<str:callback_token>/classic/notify": _classic_notification,
    "sandbox/settlements/<str:client_id>/<isodate:day>.csv": _settlement_file,
    "sandbox/authcode": lambda t, caller, fresh: Call(f"/sandbox/authcode?appId={t.shop.app_id}"),
    "sandbox/cashier/<slug:payment_id>": lambda t, caller, fresh: _form(t.cashier_path, {"action": "cancel"}),
    "sandbox/tradepay": lambda t, caller, fresh: Call(
        "/sandbox/tradepay?" + urllib.parse.urlencode({"orderStr": t.order_str})
    ),
    "sandbox/tradepay/<slug:wallet_no>": lambda t, caller, fresh: _form(
        f"/sandbox/tradepay/{t.wallet_no}", {"action": "cancel"}
    ),
    "demo/<slug:app_id>/": lambda t, caller, fresh: Call(f"/demo/{t.rentals.app_id}/"),
    "demo/rentals/<public_id:preauthorization_id>/stop": _rental_stop,
    "demo/merchant-webhooks/<str:app_id>": _merchant_webhook,
}


def _plain(route: str) -> Builder:
    """A route without path parameters and without a body of its own: called as it is, with ``{}``."""
    return lambda t, caller, fresh: _json("/" + route, {})


# --- the roles -------------------------------------------------------------------------------------------


def _credentials(t: TenantA, caller: Caller, call: Call, ids_in_path: bool) -> dict:
    merchant = call.merchant or t.merchant
    bearer = {
        Caller.USER_SESSION: t.session,
        Caller.MERCHANT_KEY: t.merchant_key(merchant),
        Caller.ISV_KEY: t.world.a.key,
        Caller.ISV_KEY_FOR_MERCHANT: t.world.a.key,
        Caller.OTHER_ISV_KEY: t.world.b.key,
    }.get(caller)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {bearer}"} if bearer else {}
    if caller is Caller.ISV_KEY_FOR_MERCHANT or (caller is Caller.OTHER_ISV_KEY and not ids_in_path):
        headers["HTTP_MERCHANT_ID"] = merchant.public_id
    return headers


def _clients(t: TenantA) -> dict[Caller, Client]:
    clients = {caller: Client() for caller in Caller}
    for caller, user in t.staff.items():
        clients[caller].force_login(user)
    return clients


# --- the walk --------------------------------------------------------------------------------------------


def _routes() -> dict[str, bool]:
    """Every route the resolver serves but the admin site's own, with whether it has path parameters."""
    found = {}

    def walk(patterns, prefix: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                if entry.namespace != "admin":  # walked by tests/test_isolation.py
                    walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                found[prefix + str(entry.pattern)] = bool(entry.pattern.converters)

    walk(get_resolver().url_patterns, "")
    return found


def _granted(response) -> bool:
    if 300 <= response.status_code < 400:
        return not response["Location"].startswith(SIGN_IN)
    return 200 <= response.status_code < 300


def _refused_in_body(response) -> bool:
    """The wallet's protocols refuse with HTTP 200: ``result.resultStatus`` F, or a classic ``code`` not 10000."""
    body = json.loads(response.content)
    if "result" in body:
        return body["result"]["resultStatus"] == "F"
    (answer,) = [value for key, value in body.items() if key.endswith("_response")]
    return answer["code"] != "10000"


def _refused(route: str, response) -> bool:
    if response.status_code in REFUSALS:
        return True
    if response.status_code == 302:
        return response["Location"].startswith(SIGN_IN)
    if response.status_code == 400 and response.get("Content-Type", "").startswith("application/json"):
        return response.json().get("error", {}).get("code") == "auth.merchant_id_required"
    return route in REFUSED_IN_BODY and response.status_code == 200 and _refused_in_body(response)


def test_every_route_the_resolver_serves_has_an_entry_in_the_allow_table():
    served = set(_routes())
    missing = sorted(served - set(ALLOW))
    assert not missing, f"add these routes and who may call each method to tests/reliability/allow_table.py: {missing}"
    assert not sorted(set(ALLOW) - served), "tests/reliability/allow_table.py names routes nobody serves"
    assert "admin/second-factor/" in served
    assert not any(route.startswith("admin/login") for route in served)  # the admin site's are walked elsewhere


@pytest.fixture
def tenant(world, wallet, shop) -> TenantA:  # noqa: F811 - the fixtures imported above
    return TenantA(world, wallet, shop)


def test_every_route_method_and_role_matches_the_allow_table(tenant, figures, request):
    clients = _clients(tenant)
    routes = _routes()
    assert set(routes) == set(ALLOW)  # the test above says which
    problems, reached, unexpected, server_errors, in_body = [], 0, 0, 0, 0
    logging.disable(logging.WARNING)  # thousands of refusals, each logged as a warning; errors still show
    request.addfinalizer(lambda: logging.disable(logging.NOTSET))
    for route, ids_in_path in routes.items():
        build = CALLS.get(route)
        assert build is not None or not ids_in_path, f"say how to call {route} in CALLS (it takes ids)"
        build = build or _plain(route)
        for method, caller in itertools.product(METHODS, Caller):
            allowed = caller in ALLOW[route].get(method, NOBODY)
            call = build(tenant, caller, allowed and method != "GET")
            headers = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in call.headers.items()}
            headers.update(_credentials(tenant, caller, call, ids_in_path))
            body = b"" if method == "GET" else call.body
            cache.clear()  # rate limits are T-SEC-6's; here every call gets a fresh budget
            response = clients[caller].generic(method, call.path, body, call.content_type, **headers)
            where = f"{method} {call.path} as {caller} answered {response.status_code}"
            if response.status_code >= 500:
                server_errors += 1
                problems.append(f"{where}: a server error")
            elif allowed:
                reached += _granted(response)
                if not _granted(response):
                    problems.append(f"{where}, but the table allows it: {response.content[:300]!r}")
            elif not _refused(route, response):
                unexpected += _granted(response)
                problems.append(f"{where}, but the table refuses it: {response.content[:300]!r}")
            else:
                in_body += response.status_code == 200
    cells = len(routes) * len(METHODS) * len(Caller)
    allowed_cells = sum(len(roles) for methods in ALLOW.values() for roles in methods.values())
    figures.record(
        "T-SEC-2",
        f"{len(routes)} routes x {len(METHODS)} methods x {len(Caller)} roles = {cells} cells, "
        f"{unexpected} unexpected 2xx, {server_errors} 5xx, {reached} of {allowed_cells} allowed cells reached "
        f"(wallet calls made against the sandbox over HTTP), {in_body} refusals in a wallet protocol's 200 body",
    )
    assert not problems, f"{len(problems)} cells disagree with the allow table:\n" + "\n".join(problems)
    assert reached == allowed_cells
