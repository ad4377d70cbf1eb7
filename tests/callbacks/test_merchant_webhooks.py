"""From the wallet to the merchant's server: a notification that changes a payment produces one signed
webhook event in the same transaction, delivered to the mini program's webhook URL — once, however often
the wallet repeats itself."""

import json

import pytest

from apps.miniprograms.services import mini_program_rotate_webhook_secret, mini_program_update
from apps.webhooks.models import WebhookEvent
from apps.webhooks.services import webhook_deliveries_due
from tests.callbacks.inbox import drain_inbox
from tests.callbacks.test_payment_notifications import _paid_at_cashier
from tests.payments.test_preauthorizations import BASE, _authorise, _capture, _create, _mini_program
from tests.sandbox.conftest import join_notifiers
from tests.webhooks.conftest import Endpoint, documented_verify


@pytest.fixture
def endpoint():
    served = Endpoint()
    yield served
    served.close()


def _hook(mini_program, endpoint) -> str:
    mini_program_update(mini_program=mini_program, webhook_url=endpoint.url())
    return mini_program_rotate_webhook_secret(mini_program=mini_program).webhook_secret


def _events(merchant_id) -> list[str]:
    """The payment events the merchant was told of (its verification, done in the set-up, aside)."""
    events = WebhookEvent.objects.unscoped().filter(merchant_id=merchant_id).exclude(type__startswith="registration.")
    return list(events.order_by("pk").values_list("type", flat=True))


def test_a_paid_order_reaches_the_merchants_server_signed_and_once(world, api, shop, wallet, endpoint):
    secret = _hook(shop, endpoint)
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    wallet.register(credential, faults={"duplicate_notify": True})
    order = _paid_at_cashier(api, world)
    drain_inbox()
    assert webhook_deliveries_due() == 1  # the registration's event went nowhere: no URL then
    [request] = endpoint.received
    assert documented_verify()(secret, request.headers, request.body)
    payload = json.loads(request.body)
    assert (payload["type"], payload["data"]["id"], payload["data"]["status"]) == ("order.paid", order["id"], "paid")
    assert payload["id"] == request.headers["webhook-id"]
    assert _events(shop.merchant_id) == ["order.paid"]
    assert webhook_deliveries_due() == 0


def test_a_pre_authorization_tells_each_step(world, api, wallet, endpoint):
    merchant = api.as_key(world.a.merchants[0].key)
    mini_program, _ = _mini_program(world, wallet, "order_str")
    _hook(mini_program, endpoint)
    created = _create(merchant, mini_program).json()
    _authorise(wallet, created["trade_pay"])
    join_notifiers()
    drain_inbox()
    _capture(merchant, created, 1000, final=False)
    _capture(merchant, created, 500, final=False)
    _capture(merchant, created, 1000, final=True)
    join_notifiers()
    drain_inbox()  # the wallet's news of the captures changes nothing more, and tells nothing twice
    assert _events(mini_program.merchant_id) == [
        "preauthorization.authorized",
        "preauthorization.captured",
        "order.paid",  # from its first capture
        "preauthorization.captured",
        "preauthorization.completed",
    ]
    while webhook_deliveries_due():
        pass
    assert [json.loads(request.body)["type"] for request in endpoint.received] == _events(mini_program.merchant_id)
    final = json.loads(endpoint.received[-1].body)["data"]
    assert (final["id"], final["captured_amount"], final["released_amount"]) == (created["id"], 2500, 2500)
    assert merchant.get(f"{BASE}/{created['id']}").json()["status"] == "completed"
