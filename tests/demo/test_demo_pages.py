"""The demo pages and the demo rental shop's server, over HTTP against the sandbox wallet (the browser
tests in tests/browser/test_demo.py click through the same pages)."""

import datetime

import httpx
import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.money import Money
from apps.demo.services import demo_seed
from apps.miniprograms.services import product_create
from apps.payments.models import PreAuthorization
from apps.superapps.models import TradePayMode
from tests.conftest import session_of
from tests.payments.test_orders import _order
from tests.payments.test_preauthorizations import _authorise, _mini_program, _wallet_totals

STOP = "/demo/rentals/{}/stop"


def test_the_index_lists_the_seeded_mini_programs_and_says_how_to_seed_without_them(db, settings):
    assert "make run" in Client().get("/demo/").content.decode()
    demo_seed()
    page = Client().get("/demo/").content.decode()
    assert "/demo/demo-coffee-app/" in page
    assert "/demo/demo-rentals-app/" in page


def test_a_mini_program_page_loads_the_shim_configured_for_it(db):
    demo_seed()
    coffee = Client().get("/demo/demo-coffee-app/")
    assert coffee.status_code == 200
    page = coffee.content.decode()
    assert 'src="/static/demo/my.js" data-app-id="demo-coffee-app" data-wallet="/sandbox"' in page
    assert 'data-api="/api/v1/"' in page
    assert "data-preauth" not in page
    assert "data-preauth" in Client().get("/demo/demo-rentals-app/").content.decode()
    assert Client().get("/demo/no-such-app/").status_code == 404


def test_the_shim_and_the_shop_are_served_as_static_files(db):
    for name in ("my.js", "shop.js", "demo.css"):
        served = Client().get(f"/static/demo/{name}")
        assert served.status_code == 200, name
        assert b"".join(served.streaming_content)


@pytest.fixture
def renter(world, api, wallet):
    """A user session in the rental mini program, whose catalogue rents bikes by the hour."""
    mini_program, _ = _mini_program(world, wallet, TradePayMode.ORDER_STR)
    product_create(merchant=mini_program.merchant, sku="bike-hour", name="City bike", price=Money(800, "USD"))
    token, _ = session_of(mini_program, "rider-1")
    session = APIClient()
    session.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return session


def _ride(session, wallet, hours: int = 3) -> dict:
    """A rental started as the demo page starts it: a catalogue deposit, authorised at the wallet."""
    created = session.post(
        "/api/v1/preauthorizations",
        {"items": [{"sku": "bike-hour", "quantity": hours}], "description": "Rental: City bike"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    _authorise(wallet, created.json()["trade_pay"])
    started = session.get(f"/api/v1/preauthorizations/{created.json()['id']}?refresh=true").json()
    assert started["status"] == "authorized"
    return started


def test_stopping_a_ride_captures_the_started_hours_and_the_wallet_gives_the_rest_back(renter, wallet):
    ride = _ride(renter, wallet)
    stopped = renter.post(STOP.format(ride["id"]))
    assert stopped.status_code == 200, stopped.json()
    body = stopped.json()
    assert (body["status"], body["captured_amount"], body["released_amount"]) == ("completed", 800, 1600)
    assert _wallet_totals(ride) == (800, 1600)


def _started(ride: dict, ago: datetime.timedelta) -> None:
    PreAuthorization.objects.unscoped().filter(public_id=ride["id"]).update(authorized_at=timezone.now() - ago)


def test_a_longer_ride_costs_each_started_hour_never_more_than_the_deposit(renter, wallet):
    ride = _ride(renter, wallet)
    _started(ride, datetime.timedelta(minutes=61))
    assert renter.post(STOP.format(ride["id"])).json()["captured_amount"] == 1600
    longer = _ride(renter, wallet)
    _started(longer, datetime.timedelta(hours=7))
    assert renter.post(STOP.format(longer["id"])).json()["captured_amount"] == 2400


def test_only_the_rider_stops_a_ride_once_and_nothing_else_moves(renter, wallet, world, api):
    ride = _ride(renter, wallet)
    mini_program = PreAuthorization.objects.unscoped().get(public_id=ride["id"]).order.mini_program
    other_token, _ = session_of(mini_program, "rider-2")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_token}")
    refused = other.post(STOP.format(ride["id"]))
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "preauthorizations.not_found")
    with_key = api.as_key(world.a.merchants[0].key).post(STOP.format(ride["id"]))
    assert (with_key.status_code, with_key.json()["error"]["code"]) == (403, "auth.principal_not_allowed")
    assert APIClient().post(STOP.format(ride["id"])).status_code == 401
    assert _wallet_totals(ride) == (0, 0)

    assert renter.post(STOP.format(ride["id"])).status_code == 200
    again = renter.post(STOP.format(ride["id"]))
    assert again.status_code == 409, again.json()
    assert _wallet_totals(ride) == (800, 1600)


def test_a_ride_not_yet_authorised_cannot_be_stopped(renter):
    created = renter.post(
        "/api/v1/preauthorizations",
        {"items": [{"sku": "bike-hour", "quantity": 1}], "description": "Rental: City bike"},
        format="json",
    ).json()
    refused = renter.post(STOP.format(created["id"]))
    assert refused.status_code == 409, refused.json()
    assert PreAuthorization.objects.unscoped().get(public_id=created["id"]).captured_amount == 0


def test_the_sandbox_home_lists_payments_awaiting_the_user_with_their_cashier(wallet, world, api, shop):
    created = _order(api, world, reference="HOME-1", amount=1250, description="Two cakes").json()
    page = httpx.get(f"{wallet.base_url}/sandbox/").text
    cashier_path = httpx.URL(created["trade_pay"]["paymentUrl"]).path
    for shown in (cashier_path, "USD 12.50", "Two cakes", "Alice", "Bob"):
        assert shown in page
