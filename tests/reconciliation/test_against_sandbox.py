"""A real settlement file from the sandbox wallet over HTTP, after paying and refunding through it."""

import datetime as dt

import pytest
from django.utils import timezone

from apps.core.tenancy import Principal
from apps.payments.models import Order, OrderStatus, Refund, RefundStatus
from apps.payments.services import refund_request
from apps.reconciliation.models import (
    Discrepancy,
    DiscrepancyStatus,
    Reason,
    ReconciliationRun,
    RunStatus,
    SettlementFile,
)
from apps.reconciliation.services import reconciliation_run
from apps.superapps.client import keys
from tests.payments.test_orders import _order
from tests.superapps.test_client_against_sandbox import _pay_at_cashier


def _paid_order(api, world, *, refresh: bool = True) -> Order:
    body = _order(api, world).json()
    _pay_at_cashier(body["trade_pay"]["paymentUrl"])
    if refresh:
        api.as_key(world.a.merchants[0].key).get(f"/api/v1/orders/{body['id']}?refresh=true")
    return Order.objects.unscoped().get(public_id=body["id"])


@pytest.mark.django_db(transaction=True)
def test_a_fetched_sandbox_file_matches_the_ledger_and_settles_what_the_platform_missed(world, api, shop, wallet):
    paid = _paid_order(api, world)
    assert paid.status == OrderStatus.PAID
    refund = refund_request(order=paid, amount=250)
    waiting = _paid_order(api, world, refresh=False)  # paid at the wallet; the platform has not heard yet
    assert waiting.status == OrderStatus.PENDING
    day = timezone.now().astimezone(dt.UTC).date()

    run = reconciliation_run(super_app=wallet.super_app, day=day)

    assert run.status == RunStatus.SUCCEEDED, run.errors
    assert run.file.source == "fetch"
    assert run.file.size > 0
    assert run.counts["lines"] == 3
    assert run.counts["matched"] == 2, list(Discrepancy.objects.unscoped().values("reason", "wallet", "platform"))
    assert run.counts[Reason.STATUS_MISMATCH] == 1
    assert run.counts["auto_resolved"] == 1
    assert run.totals["USD"]["gross"] == 1250 + 1250 - refund.amount
    assert run.totals["USD"]["net"] == run.totals["USD"]["gross"] - run.totals["USD"]["fee"]
    assert Order.objects.unscoped().get(pk=waiting.pk).status == OrderStatus.PAID
    (discrepancy,) = Discrepancy.objects.visible_to(Principal.operator()).filter(run=run)
    assert discrepancy.status == DiscrepancyStatus.AUTO_RESOLVED
    assert discrepancy.wallet["payment_request_id"] == discrepancy.platform["payment"]["payment_request_id"]

    again = reconciliation_run(super_app=wallet.super_app, day=day)  # the same bytes: the same run

    assert again.pk == run.pk
    assert ReconciliationRun.objects.unscoped().filter(super_app=wallet.super_app).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_file_whose_signature_does_not_verify_is_not_kept(world, shop, wallet):
    wallet.super_app.wallet_public_key_pem = keys.generate_key_pair()[1]
    wallet.super_app.save(update_fields=["wallet_public_key_pem"])
    day = timezone.now().astimezone(dt.UTC).date()

    run = reconciliation_run(super_app=wallet.super_app, day=day)

    assert run.status == RunStatus.FAILED
    assert run.error_code == "reconciliation.file_missing"
    assert "signature" in run.errors[0]
    assert not SettlementFile.objects.unscoped().filter(super_app=wallet.super_app).exists()


@pytest.mark.django_db(transaction=True)
def test_a_refund_the_wallet_settled_while_the_platform_waits_is_settled_by_inquiry(world, api, shop, wallet):
    paid = _paid_order(api, world)
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    wallet.register(credential, faults={"drop_response": True})
    refund = refund_request(order=paid, amount=300)  # the wallet refunds; its answer is lost
    wallet.register(credential, faults={})
    assert refund.status == RefundStatus.PROCESSING
    day = timezone.now().astimezone(dt.UTC).date()

    run = reconciliation_run(super_app=wallet.super_app, day=day)

    assert run.counts[Reason.STATUS_MISMATCH] == 1
    assert run.counts["auto_resolved"] == 1
    (discrepancy,) = Discrepancy.objects.visible_to(Principal.operator()).filter(run=run)
    assert discrepancy.refund_id == refund.pk
    assert discrepancy.status == DiscrepancyStatus.AUTO_RESOLVED
    assert Refund.objects.unscoped().get(pk=refund.pk).status == RefundStatus.SUCCEEDED
    assert Order.objects.unscoped().get(pk=paid.pk).refunded_amount == 300
