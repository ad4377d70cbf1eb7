"""T-REL-9: 100 injected discrepancies of every kind among 10,000 clean lines, all found with the right reason,
the ones an inquiry settles settled in the same run, nothing else reported."""

import random

import pytest

from apps.core.tenancy import Principal
from apps.payments.models import Order, OrderStatus, Payment, PaymentStatus
from apps.reconciliation.models import Discrepancy, DiscrepancyStatus, Reason, RunStatus
from apps.reconciliation.services import reconciliation_run
from tests.reconciliation.builders import DAY, Ledger, at, payment_line, refund_line, write_file
from tests.reconciliation.test_against_sandbox import _paid_order

pytestmark = pytest.mark.reliability


def _key(discrepancy: Discrepancy) -> str:
    wallet = discrepancy.wallet
    if wallet:
        return wallet["refund_request_id"] or wallet["payment_request_id"]
    return discrepancy.platform["payment"]["payment_request_id"]


@pytest.mark.django_db(transaction=True)
def test_t_rel_9_every_injected_discrepancy_is_found_with_its_reason_and_nothing_else(
    world, api, shop, wallet, tmp_path, figures
):
    ledger = Ledger(shop)
    morning = at(DAY, 3600)
    clean = ledger.payments("clean", 9_800, paid_at=morning)
    refunded = ledger.refunds("clean-refund", clean[:200])
    lines = [payment_line(p) for p in clean] + [refund_line(r, p) for r, p in zip(refunded, clean, strict=False)]
    expected = set()

    for index in range(11):
        ghost = payment_line(clean[0], payment_request_id=f"ghost-{index}", payment_id=f"W-ghost-{index}")
        lines.append(ghost)
        expected.add((Reason.MISSING_IN_PLATFORM, ghost["payment_request_id"]))
    lines.append(refund_line(refunded[0], clean[0], refund_request_id="ghost-refund", refund_id="WR-ghost"))
    expected.add((Reason.MISSING_IN_PLATFORM, "ghost-refund"))

    for payment in ledger.payments("unsettled", 12, paid_at=at(DAY, 5000)):
        expected.add((Reason.MISSING_IN_WALLET, payment.payment_request_id))
    for payment in ledger.payments("cutoff", 6, paid_at=at(DAY, 86_400 - 300)):
        expected.add((Reason.TIMING_CUTOFF, payment.payment_request_id))
    for payment in ledger.payments("amount", 12, paid_at=morning):
        lines.append(payment_line(payment, amount=payment.amount + 1))
        expected.add((Reason.AMOUNT_MISMATCH, payment.payment_request_id))
    for payment in ledger.payments("currency", 12, paid_at=morning):
        lines.append(payment_line(payment, currency="EUR"))
        expected.add((Reason.CURRENCY_MISMATCH, payment.payment_request_id))
    for payment in ledger.payments("failed", 6, paid_at=morning, status=PaymentStatus.FAILED):
        lines.append(payment_line(payment))
        expected.add((Reason.STATUS_MISMATCH, payment.payment_request_id))
    for payment in clean[1000:1012]:
        lines.append(payment_line(payment))
        expected.add((Reason.DUPLICATE_IN_FILE, payment.payment_request_id))
    refund_payments = ledger.payments("refunded", 12, paid_at=morning)
    for refund, payment in zip(ledger.refunds("bad-refund", refund_payments), refund_payments, strict=True):
        lines += [payment_line(payment), refund_line(refund, payment, amount=-(refund.amount + 1))]
        expected.add((Reason.REFUND_MISMATCH, refund.refund_request_id))
    for payment in ledger.payments("fee", 11, paid_at=morning):
        lines.append(payment_line(payment, net=payment.amount))
        expected.add((Reason.FEE_UNEXPECTED, payment.payment_request_id))
    # Paid at the wallet, never heard of by the platform: an inquiry settles them.
    waiting = [_paid_order(api, world, refresh=False) for _ in range(5)]
    for order in waiting:
        payment = Payment.objects.unscoped().get(order=order)
        lines.append(payment_line(payment))
        expected.add((Reason.STATUS_MISMATCH, payment.payment_request_id))
    assert len(expected) == 100
    random.Random(9).shuffle(lines)  # noqa: S311 - a fixed order for the test, not a secret
    path = write_file(tmp_path / "day.csv", lines)
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)

    run = reconciliation_run(super_app=wallet.super_app, day=DAY, credential=credential, file_path=path)
    recorded = Discrepancy.objects.visible_to(Principal.operator()).count()

    assert run.status == RunStatus.SUCCEEDED, run.errors
    found = list(Discrepancy.objects.visible_to(Principal.operator()).filter(run=run))
    assert {(d.reason, _key(d)) for d in found} == expected
    assert len(found) == 100  # no false positives, none twice
    assert run.counts["lines"] == len(lines) == 10_000 + 11 + 1 + 12 + 12 + 6 + 12 + 2 * 12 + 11 + 5
    assert run.counts["matched"] == 10_000 + 12
    assert run.counts["auto_resolved"] == 5
    assert sum(run.counts[reason] for reason in Reason.values) == 100
    settled = {d.payment_id for d in found if d.status == DiscrepancyStatus.AUTO_RESOLVED}
    assert settled == set(Payment.objects.unscoped().filter(order__in=waiting).values_list("pk", flat=True))
    assert set(Order.objects.unscoped().filter(pk__in=[o.pk for o in waiting]).values_list("status", flat=True)) == {
        OrderStatus.PAID
    }
    usd = run.totals["USD"]
    assert usd["gross"] == sum(line["amount"] for line in lines if line["currency"] == "USD")
    assert usd["net"] == sum(line["net"] for line in lines if line["currency"] == "USD")
    assert run.totals["EUR"]["lines"] == 12

    again = reconciliation_run(super_app=wallet.super_app, day=DAY, credential=credential, file_path=path)

    assert again.pk == run.pk
    assert Discrepancy.objects.visible_to(Principal.operator()).count() == recorded
    right = {(d.reason, _key(d)) for d in found} & expected
    added_again = Discrepancy.objects.visible_to(Principal.operator()).count() - recorded
    figures.record(
        "T-REL-9",
        f"{len(expected)} injected discrepancies among {run.counts['lines']} settlement lines: {len(right)} found "
        f"with their reason, {len(found) - len(right)} false positives on {len(clean) + len(refunded)} clean "
        f"lines, {len(settled)} settled by inquiry in the same run; a second run adds {added_again}",
    )
