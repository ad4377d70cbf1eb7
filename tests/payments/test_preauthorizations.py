"""Pre-authorizations over real HTTP against the sandbox wallet: freeze, authorise on the wallet's page,
capture in parts or once, release, expire — in both wire variants (classic freeze orderStr; authorization
payment with a cashier URL). Unknown outcomes are settled by asking, never guessed."""

import datetime
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.money import Money
from apps.miniprograms.models import Feature
from apps.miniprograms.services import feature_set, product_create
from apps.payments import tasks
from apps.payments.models import Order, Payment, PaymentEvent, PreAuthorization, PreAuthorizationRelease
from apps.sandbox.models import Capture as WalletCapture
from apps.sandbox.models import ClassicOrder, ClassicUnfreeze
from apps.sandbox.models import Payment as WalletPayment
from apps.superapps.models import TradePayMode
from tests.conftest import session_of
from tests.payments.conftest import ready_mini_program
from tests.superapps.test_classic_client import _open, _pay
from tests.superapps.test_client_against_sandbox import _pay_at_cashier

BASE = "/api/v1/preauthorizations"


def _mini_program(world, wallet, mode, *, feature=True):
    app_id = "rental-app" if mode == TradePayMode.ORDER_STR else "hotel-app"
    mini_program, credential = ready_mini_program(
        world.a.merchants[0].merchant, wallet, app_id=app_id, trade_pay_mode=mode
    )
    if feature:
        feature_set(mini_program=mini_program, feature=Feature.PRE_AUTHORIZATION, enabled=True)
    return mini_program, credential


@pytest.fixture(params=[TradePayMode.ORDER_STR, TradePayMode.PAYMENT_URL])
def rental(request, world, wallet):
    """A mini program with pre-authorization on, in each wire variant."""
    return _mini_program(world, wallet, request.param)


@pytest.fixture
def scooters(world, wallet):
    """The classic (orderStr) variant only."""
    return _mini_program(world, wallet, TradePayMode.ORDER_STR)


@pytest.fixture
def merchant(api, world):
    return api.as_key(world.a.merchants[0].key)


def _create(merchant, mini_program, **overrides):
    body = {
        "mini_program": mini_program.app_id,
        "amount": 5000,
        "currency": "USD",
        "description": "Scooter deposit",
        **overrides,
    }
    return merchant.post(BASE, body, format="json")


def _authorise(wallet, trade_pay: dict) -> None:
    """What the user does in the super app: confirm the freeze (orderStr) or the authorization (cashier)."""
    if "orderStr" in trade_pay:
        with httpx.Client(timeout=10) as browser:
            _pay(wallet, _open(wallet, trade_pay["orderStr"], browser), browser)
    else:
        _pay_at_cashier(trade_pay["paymentUrl"])


def _authorised(merchant, wallet, mini_program, **overrides) -> dict:
    created = _create(merchant, mini_program, **overrides)
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["status"] == "pending"
    _authorise(wallet, body["trade_pay"])
    refreshed = merchant.get(f"{BASE}/{body['id']}?refresh=true").json()
    assert refreshed["status"] == "authorized", refreshed
    assert refreshed["trade_pay"] == {}
    return refreshed


def _capture(merchant, pre_authorization: dict, amount: int, final: bool):
    return merchant.post(f"{BASE}/{pre_authorization['id']}/capture", {"amount": amount, "final": final}, format="json")


def _later(**delta):
    return time_machine.travel(timezone.now() + datetime.timedelta(**delta), tick=True)


def _wallet_totals(pre_authorization: dict) -> tuple[int, int]:
    """(captured, given back) as the sandbox wallet records them."""
    freeze = ClassicOrder.objects.filter(out_no=pre_authorization["out_order_no"]).first()
    if freeze is not None:
        return freeze.captured, freeze.unfrozen
    payment = WalletPayment.objects.get(payment_request_id=pre_authorization["out_order_no"])
    return payment.captured, (payment.amount - payment.captured) if payment.released_at else 0


# --- the cycles ----------------------------------------------------------------------------------


def test_capture_in_part_then_the_rest_completes(world, merchant, wallet, rental):
    mini_program, _ = rental
    authorised = _authorised(merchant, wallet, mini_program)
    assert authorised["auth_no"]
    assert authorised["authorized_at"]
    assert authorised["remaining_amount"] == 5000
    assert authorised["expires_in_seconds"] > 6 * 86400

    first = _capture(merchant, authorised, 1500, final=False)
    assert first.status_code == 200, first.json()
    body = first.json()
    assert (body["status"], body["captured_amount"], body["remaining_amount"]) == ("partially_captured", 1500, 3500)
    assert [(c["amount"], c["final"], c["status"]) for c in body["captures"]] == [(1500, False, "succeeded")]
    order = merchant.get(f"/api/v1/orders/{body['order']}").json()
    assert (order["kind"], order["status"], order["paid_amount"]) == ("pre_authorization", "paid", 1500)

    rest = _capture(merchant, authorised, 3500, final=True).json()
    assert (rest["status"], rest["captured_amount"], rest["released_amount"], rest["remaining_amount"]) == (
        "completed",
        5000,
        0,
        0,
    )
    assert merchant.get(f"/api/v1/orders/{body['order']}").json()["paid_amount"] == 5000
    assert _wallet_totals(rest) == (5000, 0)
    subjects = PaymentEvent.objects.unscoped().filter(order__public_id=body["order"])
    assert list(subjects.filter(subject="preauthorization").order_by("pk").values_list("to_status", flat=True)) == [
        "authorized",
        "partially_captured",
        "completed",
    ]


def test_a_final_capture_of_less_releases_the_remainder(world, merchant, wallet, rental):
    mini_program, _ = rental
    authorised = _authorised(merchant, wallet, mini_program)
    done = _capture(merchant, authorised, 1240, final=True).json()
    assert (done["status"], done["captured_amount"], done["released_amount"], done["remaining_amount"]) == (
        "completed",
        1240,
        3760,
        0,
    )
    assert _wallet_totals(done) == (1240, 3760)
    again = _capture(merchant, authorised, 100, final=True)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "preauthorizations.not_open")


def test_release_gives_everything_back_and_closes_the_order(world, merchant, wallet, rental):
    mini_program, _ = rental
    authorised = _authorised(merchant, wallet, mini_program)
    released = merchant.post(f"{BASE}/{authorised['id']}/release", {}, format="json")
    assert released.status_code == 200, released.json()
    body = released.json()
    assert (body["status"], body["released_amount"], body["remaining_amount"]) == ("released", 5000, 0)
    assert [(r["amount"], r["status"]) for r in body["releases"]] == [(5000, "succeeded")]
    assert merchant.get(f"/api/v1/orders/{body['order']}").json()["status"] == "closed"
    assert _wallet_totals(body) == (0, 5000)


def test_a_partial_release_then_a_final_capture(world, merchant, wallet, scooters):
    mini_program, _ = scooters
    authorised = _authorised(merchant, wallet, mini_program)
    partial = merchant.post(f"{BASE}/{authorised['id']}/release", {"amount": 2000}, format="json").json()
    assert (partial["status"], partial["released_amount"], partial["remaining_amount"]) == ("authorized", 2000, 3000)
    done = _capture(merchant, authorised, 3000, final=True).json()
    assert (done["status"], done["captured_amount"], done["released_amount"]) == ("completed", 3000, 2000)
    assert _wallet_totals(done) == (3000, 2000)


def test_an_authorization_payment_is_voided_whole_or_not_at_all(world, merchant, wallet):
    mini_program, _ = _mini_program(world, wallet, TradePayMode.PAYMENT_URL)
    authorised = _authorised(merchant, wallet, mini_program)
    partial = merchant.post(f"{BASE}/{authorised['id']}/release", {"amount": 100}, format="json")
    assert (partial.status_code, partial.json()["error"]["code"]) == (
        400,
        "preauthorizations.partial_release_not_supported",
    )
    assert not PreAuthorizationRelease.objects.unscoped().filter(pre_authorization__public_id=authorised["id"]).exists()


# --- refusals: nothing written, nothing sent -------------------------------------------------------


def test_a_capture_above_what_is_frozen_is_refused_and_nothing_is_sent(world, merchant, wallet, rental):
    mini_program, _ = rental
    authorised = _authorised(merchant, wallet, mini_program)
    assert _capture(merchant, authorised, 2000, final=False).status_code == 200
    too_much = _capture(merchant, authorised, 3001, final=True)
    assert too_much.status_code == 400
    assert (too_much.json()["error"]["code"], too_much.json()["error"]["attr"]) == (
        "preauthorizations.capture_exceeds_remaining",
        "amount",
    )
    assert Payment.objects.unscoped().filter(pre_authorization__public_id=authorised["id"]).count() == 1
    assert _wallet_totals(authorised) == (2000, 0)
    assert ClassicOrder.objects.filter(kind="TRADE").count() + WalletCapture.objects.count() == 1


def test_nothing_is_captured_before_the_user_authorises(world, merchant, wallet, rental):
    mini_program, _ = rental
    pending = _create(merchant, mini_program).json()
    refused = _capture(merchant, pending, 100, final=True)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "preauthorizations.not_authorized")
    refused = merchant.post(f"{BASE}/{pending['id']}/release", {}, format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "preauthorizations.not_authorized")


def test_the_feature_must_be_enabled_and_nothing_is_written(world, merchant, wallet):
    mini_program, _ = _mini_program(world, wallet, TradePayMode.ORDER_STR, feature=False)
    refused = _create(merchant, mini_program)
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "miniprograms.feature_not_enabled")
    assert not Order.objects.unscoped().filter(mini_program=mini_program).exists()


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"expires_in": 90}, "preauthorizations.expiry_out_of_range"),  # not whole minutes
        ({"expires_in": 16 * 86400}, "validation.max_value"),
        ({"amount": 0}, "validation.min_value"),
        ({"amount": "12.50"}, "validation.invalid"),
        ({"currency": "JPY"}, "payments.currency_not_supported"),  # a freeze is in two-decimal currencies
    ],
)
def test_bad_pre_authorizations_write_and_send_nothing(world, merchant, wallet, scooters, overrides, code):
    refused = _create(merchant, scooters[0], **overrides)
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, code), refused.json()
    assert not PreAuthorization.objects.unscoped().filter(order__mini_program=scooters[0]).exists()


def test_capture_and_release_inputs_are_checked(world, merchant, wallet, scooters):
    authorised = _authorised(merchant, wallet, scooters[0])
    for body, code in [
        ({"amount": 100}, "validation.required"),
        ({"amount": -5, "final": True}, "validation.min_value"),
        ({"amount": 1.5, "final": True}, "validation.invalid"),
        ({"final": True}, "validation.required"),
    ]:
        refused = merchant.post(f"{BASE}/{authorised['id']}/capture", body, format="json")
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, code), body
    too_much = merchant.post(f"{BASE}/{authorised['id']}/release", {"amount": 5001}, format="json")
    assert too_much.json()["error"]["code"] == "preauthorizations.release_exceeds_remaining"
    assert not Payment.objects.unscoped().filter(pre_authorization__public_id=authorised["id"]).exists()


# --- expiry --------------------------------------------------------------------------------------


def test_an_authorization_expires_and_is_then_refused_with_a_clear_code(world, merchant, wallet, rental):
    mini_program, _ = rental
    authorised = _authorised(merchant, wallet, mini_program, expires_in=3600)
    assert authorised["expiring"] is True  # under a day left: the badge is on from the start
    with _later(minutes=61):
        refused = _capture(merchant, authorised, 100, final=True)
        assert (refused.status_code, refused.json()["error"]["code"]) == (409, "preauthorizations.expired")
        assert tasks.expire_preauthorizations() == 1
        expired = merchant.get(f"{BASE}/{authorised['id']}").json()
        assert (expired["status"], expired["released_amount"], expired["expires_in_seconds"]) == ("expired", 5000, 0)
        assert merchant.get(f"/api/v1/orders/{expired['order']}").json()["status"] == "closed"
        assert tasks.expire_preauthorizations() == 0


def test_a_partly_captured_authorization_expires_keeping_its_captures(world, merchant, wallet, scooters):
    authorised = _authorised(merchant, wallet, scooters[0], expires_in=7200)
    _capture(merchant, authorised, 1000, final=False)
    with _later(hours=3):
        tasks.expire_preauthorizations()
        expired = merchant.get(f"{BASE}/{authorised['id']}").json()
    assert (expired["status"], expired["captured_amount"], expired["released_amount"]) == ("expired", 1000, 4000)
    order = merchant.get(f"/api/v1/orders/{expired['order']}").json()
    assert (order["status"], order["paid_amount"]) == ("paid", 1000)


def test_one_never_authorised_expires_too(world, merchant, wallet, scooters):
    pending = _create(merchant, scooters[0], expires_in=600).json()
    with _later(minutes=11):
        assert tasks.expire_preauthorizations() == 1
    assert PreAuthorization.objects.unscoped().get(public_id=pending["id"]).status == "expired"
    assert Order.objects.unscoped().get(public_id=pending["order"]).status == "closed"


def test_staff_are_warned_once_before_expiry(world, merchant, wallet, scooters, settings):
    settings.PREAUTHORIZATION_EXPIRY_WARNING_SECONDS = 3600
    authorised = _authorised(merchant, wallet, scooters[0], expires_in=2 * 3600)
    assert authorised["expiring"] is False
    tasks.expire_preauthorizations()
    warnings = PaymentEvent.objects.unscoped().filter(
        pre_authorization__public_id=authorised["id"], source="expiry_warning"
    )
    assert not warnings.exists()
    with _later(minutes=70):
        tasks.expire_preauthorizations()
        tasks.expire_preauthorizations()
        assert merchant.get(f"{BASE}/{authorised['id']}").json()["expiring"] is True
    assert warnings.count() == 1
    assert "5000 USD" in warnings.get().reason


# --- unknown outcomes ----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["result_u", "http_500"])
def test_an_unknown_capture_is_settled_by_inquiry_never_guessed(world, merchant, wallet, rental, fault):
    """``result_u``: the wallet captured but the answer was lost; ``http_500``: it never received it."""
    mini_program, credential = rental
    authorised = _authorised(merchant, wallet, mini_program)
    wallet.register(credential, faults={fault: True})
    answered = _capture(merchant, authorised, 1200, final=False).json()
    wallet.register(credential)
    assert (answered["status"], answered["captured_amount"]) == ("authorized", 0)  # nothing counted on a guess
    assert [c["status"] for c in answered["captures"]] == ["unknown"]
    busy = _capture(merchant, authorised, 100, final=False)
    assert (busy.status_code, busy.json()["error"]["code"]) == (409, "preauthorizations.operation_in_progress")

    with _later(minutes=1):
        tasks.resolve_due()
    settled = merchant.get(f"{BASE}/{authorised['id']}").json()
    assert (settled["status"], settled["captured_amount"]) == ("partially_captured", 1200)
    assert [c["status"] for c in settled["captures"]] == ["succeeded"]
    assert _wallet_totals(settled) == (1200, 0)  # captured once at the wallet, whatever happened


@pytest.mark.parametrize("fault", ["result_u", "http_500"])
def test_an_unknown_release_is_sent_again_with_the_same_out_request_no(world, merchant, wallet, scooters, fault):
    mini_program, credential = scooters
    authorised = _authorised(merchant, wallet, mini_program)
    wallet.register(credential, faults={fault: True})
    answered = merchant.post(f"{BASE}/{authorised['id']}/release", {"amount": 1500}, format="json").json()
    wallet.register(credential)
    assert (answered["status"], answered["released_amount"]) == ("authorized", 0)
    [release] = answered["releases"]
    assert release["status"] == "processing"

    with _later(minutes=1):
        tasks.resolve_due()
    settled = merchant.get(f"{BASE}/{authorised['id']}").json()
    assert (settled["released_amount"], settled["remaining_amount"]) == (1500, 3500)
    assert [(r["out_request_no"], r["status"]) for r in settled["releases"]] == [
        (release["out_request_no"], "succeeded")
    ]
    unfreezes = ClassicUnfreeze.objects.all()
    assert [(u.out_request_no, u.amount) for u in unfreezes] == [(release["out_request_no"], 1500)]


def test_an_authorization_whose_answer_was_lost_is_found_by_inquiry(world, merchant, wallet):
    mini_program, credential = _mini_program(world, wallet, TradePayMode.PAYMENT_URL)
    wallet.register(credential, faults={"result_u": True})
    created = _create(merchant, mini_program).json()
    wallet.register(credential)
    assert (created["status"], created["trade_pay"]) == ("pending", {})  # no cashier URL to offer
    wallet_payment = WalletPayment.objects.get(payment_request_id=created["out_order_no"])
    _pay_at_cashier(f"{wallet.base_url}/sandbox/cashier/{wallet_payment.payment_id}")
    with _later(seconds=10):
        tasks.resolve_due()
    assert merchant.get(f"{BASE}/{created['id']}").json()["status"] == "authorized"


# --- who may do what -----------------------------------------------------------------------------


def test_a_user_session_reads_its_own_and_cannot_capture(world, api, merchant, wallet, scooters):
    mini_program, _ = scooters
    token, user_id = session_of(mini_program, "renter-1")
    authorised = _authorised(merchant, wallet, mini_program)  # placed by the merchant's server: not the user's
    session = api.__class__()
    session.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert session.get(f"{BASE}/{authorised['id']}").status_code == 404
    Order.objects.unscoped().filter(public_id=authorised["order"]).update(wallet_user_id=user_id)
    assert session.get(f"{BASE}/{authorised['id']}").json()["status"] == "authorized"
    assert [p["id"] for p in session.get(BASE).json()["results"]] == [authorised["id"]]
    assert _capture(session, authorised, 100, final=True).status_code == 403
    assert session.post(f"{BASE}/{authorised['id']}/release", {}, format="json").status_code == 403


def test_an_open_pre_authorization_is_finished_before_its_order_is_refunded(world, merchant, wallet, scooters):
    authorised = _authorised(merchant, wallet, scooters[0])
    _capture(merchant, authorised, 1000, final=False)
    _capture(merchant, authorised, 1500, final=False)
    order_id = authorised["order"]
    early = merchant.post(f"/api/v1/orders/{order_id}/refunds", {"amount": 500}, format="json")
    assert (early.status_code, early.json()["error"]["code"]) == (409, "payments.pre_authorization_open")
    merchant.post(f"{BASE}/{authorised['id']}/release", {}, format="json")

    spanning = merchant.post(f"/api/v1/orders/{order_id}/refunds", {"amount": 2000}, format="json")
    assert (spanning.status_code, spanning.json()["error"]["code"]) == (400, "payments.refund_exceeds_paid")
    first = merchant.post(f"/api/v1/orders/{order_id}/refunds", {"amount": 1000}, format="json").json()
    second = merchant.post(f"/api/v1/orders/{order_id}/refunds", {"amount": 1500}, format="json").json()
    assert (first["status"], second["status"]) == ("succeeded", "succeeded")
    order = merchant.get(f"/api/v1/orders/{order_id}").json()
    assert (order["status"], order["paid_amount"], order["refunded_amount"]) == ("refunded", 2500, 2500)


def test_an_order_of_a_pre_authorization_is_released_not_cancelled(world, merchant, wallet, scooters):
    pending = _create(merchant, scooters[0]).json()
    refused = merchant.post(f"/api/v1/orders/{pending['order']}/cancel")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "payments.order_is_pre_authorization")


def test_the_admin_shows_time_left_and_an_expiring_badge_to_the_merchants_staff(world, merchant, wallet, scooters):
    soon = _authorised(merchant, wallet, scooters[0], expires_in=3600, reference="SOON")
    capture = PreAuthorization.objects.unscoped().get(public_id=soon["id"])
    _capture(merchant, soon, 700, final=False)
    later = _authorised(merchant, wallet, scooters[0], expires_in=3 * 86400, reference="LATER")
    browser = Client()
    browser.force_login(world.a.merchants[0].staff)
    page = browser.get(reverse("admin:payments_preauthorization_changelist")).content.decode()
    assert page.count("EXPIRING") == 1
    assert set(re.findall(r"pau_[0-9a-z]{26}", page)) == {soon["id"], later["id"]}  # nobody else's
    assert "2d 23h" in page
    soon_pk = PreAuthorization.objects.unscoped().get(public_id=soon["id"]).pk
    detail = browser.get(reverse("admin:payments_preauthorization_change", args=[soon_pk])).content.decode()
    assert "EXPIRING" in detail
    assert capture.captures.get().public_id in detail  # the captures inline, shown to the merchant's staff
    assert "50.00 USD" in detail


@pytest.mark.postgres  # SQLite serialises writers anyway; the row lock is what PostgreSQL needs
def test_concurrent_captures_never_exceed_what_is_frozen(world, merchant, wallet, scooters):
    authorised = _authorised(merchant, wallet, scooters[0])
    key = world.a.merchants[0].key

    def capture_most(_):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        try:
            return _capture(client, authorised, 3000, final=False).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(capture_most, range(4)))
    assert statuses.count(200) == 1
    assert all(status in (400, 409) for status in statuses if status != 200)
    settled = merchant.get(f"{BASE}/{authorised['id']}").json()
    assert (settled["captured_amount"], len(settled["captures"])) == (3000, 1)
    assert _wallet_totals(settled) == (3000, 0)


def test_a_user_session_freezes_a_catalogue_deposit_never_its_own_amount(world, api, wallet, scooters):
    mini_program, _ = scooters
    product_create(merchant=mini_program.merchant, sku="scooter-day", name="Scooter, one day", price=Money(2500, "USD"))
    token, user_id = session_of(mini_program, "renter-2")
    session = api.__class__()
    session.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    own_price = session.post(BASE, {"amount": 1, "currency": "USD", "description": "Deposit"}, format="json")
    assert (own_price.status_code, own_price.json()["error"]["code"]) == (400, "payments.items_required")
    created = session.post(
        BASE, {"items": [{"sku": "scooter-day", "quantity": 2}], "description": "Deposit"}, format="json"
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["amount"], body["mini_program"], set(body["trade_pay"])) == (5000, "rental-app", {"orderStr"})
    assert Order.objects.unscoped().get(public_id=body["order"]).wallet_user_id == user_id


def test_a_captured_pre_authorization_is_refunded_in_either_variant(world, merchant, wallet, rental):
    mini_program, _ = rental
    authorised = _authorised(merchant, wallet, mini_program)
    _capture(merchant, authorised, 1000, final=True)
    refund = merchant.post(f"/api/v1/orders/{authorised['order']}/refunds", {"amount": 400}, format="json").json()
    assert refund["status"] == "succeeded", refund
    order = merchant.get(f"/api/v1/orders/{authorised['order']}").json()
    assert (order["status"], order["paid_amount"], order["refunded_amount"]) == ("partially_refunded", 1000, 400)
