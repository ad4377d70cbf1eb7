"""Every call to a super app leaves its evidence (WalletExchange): over real HTTP to the sandbox wallet."""

import datetime
import json
import socket

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from apps.core.tenancy import Principal
from apps.merchants.selectors import wallet_client_for
from apps.merchants.services import wallet_credential_create
from apps.payments.models import Payment, Refund
from apps.superapps.client.client import WalletClient, WalletConfig
from apps.superapps.client.errors import WalletUnknownOutcome
from apps.superapps.client.evidence import SCRUBBED, scrubbed
from apps.superapps.client.messages import ApiVersion
from apps.superapps.models import SuperApp, WalletExchange
from apps.superapps.selectors import wallet_exchanges_about
from apps.superapps.services import wallet_exchanges_purge
from tests.conftest import _test_key_pair
from tests.payments import conftest as payments_fixtures
from tests.payments.test_orders import _order
from tests.payments.test_refunds_and_cancels import _paid_order
from tests.usersessions.test_sessions import auth_code

# The payments suite's v2 sandbox and its published shop (this folder's own ``wallet`` runs v1 and v2).
wallet = payments_fixtures.wallet
shop = payments_fixtures.shop


def _owner(tenant) -> Principal:
    return Principal.system(isv_id=tenant.merchant.isv_id, merchant_id=tenant.merchant.pk)


def test_scrubbing_hides_credentials_and_people_and_keeps_what_support_reads():
    body = {
        "authCode": "code-1",
        "accessToken": "token-1",
        "result": {"resultStatus": "S", "resultCode": "SUCCESS"},
        "paymentAmount": {"currency": "USD", "value": "1250"},
        "paymentRequestId": "pr_1",
        "extendInfo": [{"customer_id": "c-1", "buyer_logon_id": "ana@example.com"}],
        "card": {"cardNo": "4111111111111111", "cvv": "123"},
    }
    assert scrubbed(body) == {
        "authCode": SCRUBBED,
        "accessToken": SCRUBBED,
        "result": {"resultStatus": "S", "resultCode": "SUCCESS"},
        "paymentAmount": {"currency": "USD", "value": "1250"},
        "paymentRequestId": "pr_1",
        "extendInfo": [{"customer_id": SCRUBBED, "buyer_logon_id": SCRUBBED}],
        "card": {"cardNo": SCRUBBED, "cvv": SCRUBBED},
    }
    assert scrubbed("not json") == "not json"


def test_an_order_paid_and_refunded_leaves_each_wallet_call_verified(world, api, shop):
    order_id, client = _paid_order(api, world)
    refund = client.post(f"/api/v1/orders/{order_id}/refunds", {"amount": 400}, format="json").json()
    payment_request_id = Payment.objects.unscoped().get(order__public_id=order_id).payment_request_id
    refund_request_id = Refund.objects.unscoped().get(public_id=refund["id"]).refund_request_id

    exchanges = list(
        wallet_exchanges_about(principal=_owner(world.a.merchants[0]), subjects=[payment_request_id, refund_request_id])
    )

    assert [(x.operation, x.subject, x.result_status, x.result_code) for x in exchanges] == [
        ("payments/pay", payment_request_id, "A", "ACCEPT"),
        ("payments/inquiryPayment", payment_request_id, "S", "SUCCESS"),
        ("payments/refund", refund_request_id, "S", "SUCCESS"),
    ]
    assert {(x.http_status, x.signature_verified, x.error) for x in exchanges} == {(200, True, "")}
    assert all(x.merchant == world.a.merchants[0].merchant and x.public_id.startswith("wx_") for x in exchanges)
    assert exchanges[2].request_body["refundAmount"] == {"currency": "USD", "value": "400"}
    assert exchanges[2].response_body["result"]["resultCode"] == "SUCCESS"


def test_an_answer_with_a_bad_signature_is_recorded_as_not_verified(world, api, wallet, shop):
    wallet.register(shop.merchant.wallet_credentials.get(super_app=wallet.super_app), faults={"bad_signature": True})
    _order(api, world)

    exchange = WalletExchange.objects.visible_to(_owner(world.a.merchants[0])).get()
    assert (exchange.operation, exchange.http_status, exchange.signature_verified) == ("payments/pay", 200, False)
    assert exchange.error == "payments/pay: the answer's signature does not verify"


def test_apply_token_keeps_no_auth_code_access_token_or_customer_id(world, api, wallet, shop):
    code = auth_code(wallet)
    assert api.post("/api/v1/sessions", {"app_id": "shop-app", "auth_code": code}, format="json").status_code == 201

    exchange = WalletExchange.objects.visible_to(_owner(world.a.merchants[0])).get()
    assert (exchange.operation, exchange.subject, exchange.signature_verified) == (
        "authorizations/applyToken",
        "",
        True,
    )
    assert exchange.request_body["authCode"] == SCRUBBED
    assert (exchange.response_body["accessToken"], exchange.response_body["customerId"]) == (SCRUBBED, SCRUBBED)
    assert code not in json.dumps([exchange.request_body, exchange.response_body])


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _unreachable(tenant, code: str):
    """The tenant's credential at a super app whose gateway is a port nobody listens on."""
    super_app = SuperApp.objects.create(
        code=code,
        name=code,
        gateway_base_url=f"http://127.0.0.1:{_closed_port()}/api",
        wallet_public_key_pem=_test_key_pair()[1],
    )
    return wallet_credential_create(
        isv=tenant.merchant.isv,
        merchant=tenant.merchant,
        super_app=super_app,
        client_id=f"{code}-client",
        private_key_pem=_test_key_pair()[0],
    )


def test_a_wallet_that_cannot_be_reached_is_recorded_without_an_answer(world):
    credential = _unreachable(world.a.merchants[0], "closed")
    with pytest.raises(WalletUnknownOutcome):
        wallet_client_for(credential=credential).inquire_payment(payment_request_id="pr_unreached")

    exchange = WalletExchange.objects.visible_to(_owner(world.a.merchants[0])).get()
    assert (exchange.operation, exchange.subject, exchange.credential, exchange.super_app) == (
        "payments/inquiryPayment",
        "pr_unreached",
        credential,
        credential.super_app,
    )
    assert (exchange.http_status, exchange.signature_verified, exchange.response_body) == (None, None, None)
    assert exchange.error == "payments/inquiryPayment: connection failed (ConnectError)"
    assert exchange.request_body == {"paymentRequestId": "pr_unreached"}


def test_a_call_by_a_credential_not_stored_goes_on_unrecorded(world):
    private_key, public_key = _test_key_pair()
    config = WalletConfig(
        base_url=f"http://127.0.0.1:{_closed_port()}/api",
        api_version=ApiVersion.V2,
        client_id="nobody",
        private_key_pem=private_key,
        wallet_public_key_pem=public_key,
    )
    before = WalletExchange.objects.unscoped().count()
    with pytest.raises(WalletUnknownOutcome, match="connection failed"):
        WalletClient(config).inquire_payment(payment_request_id="pr_nobody")
    assert WalletExchange.objects.unscoped().count() == before


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_merchants_see_only_their_own_exchanges(world):
    for tenant, code in ((world.a.merchants[0], "closed-a"), (world.b.merchants[0], "closed-b")):
        with pytest.raises(WalletUnknownOutcome):
            wallet_client_for(credential=_unreachable(tenant, code)).inquire_payment(payment_request_id=f"pr_{code}")
    subjects = ["pr_closed-a", "pr_closed-b"]

    def seen_by(principal):
        return [x.subject for x in wallet_exchanges_about(principal=principal, subjects=subjects)]

    assert seen_by(_owner(world.a.merchants[0])) == ["pr_closed-a"]
    assert seen_by(_owner(world.b.merchants[0])) == ["pr_closed-b"]
    assert seen_by(_owner(world.a.merchants[1])) == []
    assert seen_by(Principal.system(isv_id=world.a.isv.pk)) == ["pr_closed-a"]
    assert seen_by(Principal.operator()) == subjects

    theirs = WalletExchange.objects.unscoped().get(subject="pr_closed-a")
    change = reverse("admin:superapps_walletexchange_change", args=[theirs.pk])
    outsider = _login(world.b.merchants[0].staff)
    listing = outsider.get(reverse("admin:superapps_walletexchange_changelist")).content.decode()
    assert "pr_closed-b" in listing
    assert "pr_closed-a" not in listing
    assert outsider.get(change).status_code == 302  # as if it did not exist
    assert "pr_closed-a" in _login(world.a.merchants[0].staff).get(change).content.decode()


def test_nobody_edits_or_deletes_an_exchange_in_the_admin(world):
    with pytest.raises(WalletUnknownOutcome):
        wallet_client_for(credential=_unreachable(world.a.merchants[0], "closed")).inquire_payment(
            payment_request_id="pr_kept"
        )
    exchange = WalletExchange.objects.unscoped().get(subject="pr_kept")
    for user in (world.operator, world.a.merchants[0].staff):
        admin = _login(user)
        assert admin.post(reverse("admin:superapps_walletexchange_change", args=[exchange.pk]), {}).status_code == 403
        assert admin.post(reverse("admin:superapps_walletexchange_delete", args=[exchange.pk])).status_code == 403
        assert admin.get(reverse("admin:superapps_walletexchange_add")).status_code == 403
    assert WalletExchange.objects.unscoped().filter(pk=exchange.pk, subject="pr_kept").exists()


def test_exchanges_past_their_retention_are_deleted_in_batches(world, settings):
    settings.WALLET_EXCHANGE_RETENTION_DAYS = 90
    client = wallet_client_for(credential=_unreachable(world.a.merchants[0], "closed"))
    now = datetime.datetime.now(datetime.UTC)
    for days_ago, subject in ((91, "pr_old1"), (91, "pr_old2"), (89, "pr_recent")):
        with time_machine.travel(now - datetime.timedelta(days=days_ago)), pytest.raises(WalletUnknownOutcome):
            client.inquire_payment(payment_request_id=subject)

    assert wallet_exchanges_purge(batch_size=1) == 2
    kept = WalletExchange.objects.unscoped().filter(subject__startswith="pr_").values_list("subject", flat=True)
    assert list(kept) == ["pr_recent"]
