"""A pre-authorization captured in parts reconciles against the sandbox wallet's file, fetched over HTTP: each
capture is a line of its own, under the capture's ids, and matches the capture's payment in the ledger."""

import datetime as dt

import pytest
from django.utils import timezone

from apps.miniprograms.models import Feature
from apps.miniprograms.services import feature_set
from apps.payments.models import Order, OrderStatus, Payment, PaymentStatus, RefundStatus
from apps.payments.services import refund_request
from apps.reconciliation.models import Discrepancy, Reason, RunStatus, SettlementLine
from apps.reconciliation.services import reconciliation_run
from tests.payments.test_preauthorizations import _authorised, _capture
from tests.reconciliation.test_against_sandbox import _paid_order


@pytest.mark.django_db(transaction=True)
def test_a_pre_authorization_captured_in_two_parts_reconciles_line_by_line(world, api, shop, wallet):
    feature_set(mini_program=shop, feature=Feature.PRE_AUTHORIZATION, enabled=True)
    merchant = api.as_key(world.a.merchants[0].key)
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    paid = _paid_order(api, world)
    assert paid.status == OrderStatus.PAID
    authorised = _authorised(merchant, wallet, shop, amount=5000)
    first = _capture(merchant, authorised, 1500, final=False)
    assert first.status_code == 200, first.json()
    last = _capture(merchant, authorised, 3000, final=True)
    assert last.status_code == 200, last.json()
    assert (last.json()["status"], last.json()["released_amount"]) == ("completed", 500)
    captures = list(
        Payment.objects.unscoped()
        .filter(pre_authorization__public_id=authorised["id"], status=PaymentStatus.SUCCEEDED)
        .order_by("created_at")
    )
    assert [capture.amount for capture in captures] == [1500, 3000]
    day = timezone.now().astimezone(dt.UTC).date()

    run = reconciliation_run(super_app=wallet.super_app, day=day, credential=credential)

    discrepancies = list(Discrepancy.objects.unscoped().filter(run=run).values("reason", "wallet", "platform"))
    assert run.status == RunStatus.SUCCEEDED, run.errors
    assert run.file.source == "fetch"
    assert run.counts["lines"] == 3
    assert run.counts["matched"] == 3, discrepancies
    assert not discrepancies
    assert all(run.counts[reason] == 0 for reason in Reason.values), run.counts
    lines = {line.payment_id: line for line in SettlementLine.objects.unscoped().filter(run=run)}
    assert set(lines) == {Payment.objects.unscoped().get(order=paid).pk, *(capture.pk for capture in captures)}
    for capture in captures:
        line = lines[capture.pk]
        assert (line.wallet_payment_id, line.payment_request_id) == (
            capture.wallet_payment_id,
            capture.payment_request_id,
        )
        assert line.amount == capture.amount
    assert run.totals["USD"]["gross"] == 1250 + 1500 + 3000
    assert Order.objects.unscoped().get(public_id=first.json()["order"]).paid_amount == 4500


@pytest.mark.django_db(transaction=True)
def test_a_refund_of_captured_money_reconciles(world, api, shop, wallet):
    feature_set(mini_program=shop, feature=Feature.PRE_AUTHORIZATION, enabled=True)
    merchant = api.as_key(world.a.merchants[0].key)
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    authorised = _authorised(merchant, wallet, shop, amount=5000)
    assert _capture(merchant, authorised, 1500, final=False).status_code == 200
    last = _capture(merchant, authorised, 3000, final=True)
    assert last.status_code == 200, last.json()
    refund = refund_request(order=Order.objects.unscoped().get(public_id=last.json()["order"]), amount=2000)
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.payment.pre_authorization.public_id == authorised["id"]  # the platform refunds a capture
    day = timezone.now().astimezone(dt.UTC).date()

    run = reconciliation_run(super_app=wallet.super_app, day=day, credential=credential)

    # The wallet's refund line names the authorization it was asked of: the sandbox cannot know the capture.
    line = SettlementLine.objects.unscoped().get(run=run, record_type="REFUND")
    assert (line.payment_request_id, line.wallet_payment_id) == (authorised["out_order_no"], authorised["auth_no"])
    assert run.status == RunStatus.SUCCEEDED, run.errors
    discrepancies = list(Discrepancy.objects.unscoped().filter(run=run).values("reason", "wallet", "platform"))
    assert run.counts["matched"] == run.counts["lines"] == 3, discrepancies
