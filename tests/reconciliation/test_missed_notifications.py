"""What the wallet told the platform but the platform never applied is applied by the reconciliation run,
before anyone asks the wallet; and refunds the ledger settled that the wallet's file lacks are reported."""

import datetime as dt
import socket
import threading

import pytest
import time_machine
from django.utils import timezone

from apps.callbacks.models import InboundNotification, NotificationStatus
from apps.callbacks.services import MAX_ATTEMPTS
from apps.core.tenancy import Principal
from apps.payments.ledger import record_event
from apps.payments.models import Payment, PaymentEvent, PaymentStatus, Refund, RefundStatus
from apps.payments.services import refund_request
from apps.reconciliation.models import Discrepancy, DiscrepancyStatus, Reason
from apps.reconciliation.services import SETTLED_BEFORE_DAYS, reconciliation_run
from tests.callbacks.inbox import arrived, drain_inbox
from tests.callbacks.test_payment_notifications import _deliver, _v2_body, _with_request_id
from tests.payments.test_orders import _order
from tests.reconciliation.builders import DAY, at, payment_line, refund_line, write_file
from tests.reconciliation.test_against_sandbox import _paid_order
from tests.reconciliation.test_services import _of
from tests.sandbox.conftest import join_notifiers
from tests.superapps.test_client_against_sandbox import _pay_at_cashier


@pytest.fixture
def silent_gateway(wallet):
    """``move()`` points the wallet's API at an address that hangs up on whoever calls; ``knocked()`` says
    whether anyone did, i.e. whether the platform asked the wallet anything since."""
    knocks, done = [], threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.05)

        def listen():
            while not done.is_set():
                try:
                    connection, _ = server.accept()
                except TimeoutError:
                    continue
                knocks.append(connection.getpeername())
                connection.close()

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()

        def move():
            wallet.super_app.gateway_base_url = f"http://127.0.0.1:{server.getsockname()[1]}/sandbox"
            wallet.super_app.save(update_fields=["gateway_base_url"])

        yield move, lambda: bool(knocks)
        done.set()
        listener.join()


def _today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def _discrepancy(run) -> Discrepancy:
    (discrepancy,) = Discrepancy.objects.visible_to(Principal.operator()).filter(run=run)
    return discrepancy


def _reconcile(wallet, shop, tmp_path, lines, *, day):
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    path = write_file(tmp_path / "day.csv", lines)
    return reconciliation_run(super_app=wallet.super_app, day=day, credential=credential, file_path=path)


# --- missed notifications ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_payment_notification_never_applied_is_applied_by_the_run_without_asking_the_wallet(
    world, api, shop, wallet, silent_gateway, tmp_path
):
    body = _order(api, world).json()
    _pay_at_cashier(body["trade_pay"]["paymentUrl"])  # paid at the wallet, which notifies the platform
    join_notifiers()
    [notification] = arrived().filter(kind="payment")
    assert (notification.status, notification.dedupe_key is not None) == (NotificationStatus.RECEIVED, True)
    # Verified and stored, then never applied: the worker gave up on it.
    InboundNotification.objects.unscoped().filter(pk=notification.pk).update(
        status=NotificationStatus.FAILED,
        attempts=MAX_ATTEMPTS + 1,
        next_attempt_at=None,
        outcome=f"gave up after {MAX_ATTEMPTS} attempts: database unavailable",
    )
    payment = Payment.objects.unscoped().get(order__public_id=body["id"])
    assert payment.status == PaymentStatus.PENDING
    move, knocked = silent_gateway
    move()

    run = _reconcile(wallet, shop, tmp_path, [payment_line(payment, day=_today())], day=_today())

    assert run.counts[Reason.STATUS_MISMATCH] == 1
    assert (run.counts["notifications_replayed"], run.counts["auto_resolved"]) == (1, 1)
    discrepancy = _discrepancy(run)
    assert discrepancy.status == DiscrepancyStatus.AUTO_RESOLVED
    assert discrepancy.note == f"settled by applying notification {notification.public_id} that had not been applied"
    notification.refresh_from_db()
    assert (notification.status, notification.outcome) == (NotificationStatus.PROCESSED, "payment succeeded")
    assert Payment.objects.unscoped().get(pk=payment.pk).status == PaymentStatus.SUCCEEDED
    events = PaymentEvent.objects.unscoped().filter(payment=payment, to_status=PaymentStatus.SUCCEEDED)
    assert list(events.values_list("source", flat=True)) == ["wallet_notification"]
    assert not knocked()  # no inquiry went to the wallet


@pytest.mark.django_db(transaction=True)
def test_a_refund_notification_never_applied_is_applied_by_the_run(world, api, shop, wallet, silent_gateway, tmp_path):
    paid = _paid_order(api, world)
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    wallet.register(credential, faults={"drop_response": True})
    refund = refund_request(order=paid, amount=300)  # the wallet refunds and notifies; its answer is lost
    wallet.register(credential, faults={})
    join_notifiers()
    assert refund.status == RefundStatus.PROCESSING
    [notification] = arrived().filter(kind="refund", status=NotificationStatus.RECEIVED)  # no worker ran
    payment = Payment.objects.unscoped().get(order=paid)
    move, knocked = silent_gateway
    move()
    lines = [payment_line(payment, day=_today()), refund_line(refund, payment, day=_today())]

    run = _reconcile(wallet, shop, tmp_path, lines, day=_today())

    assert (run.counts[Reason.STATUS_MISMATCH], run.counts["auto_resolved"]) == (1, 1)
    discrepancy = _discrepancy(run)
    assert (discrepancy.refund_id, discrepancy.status) == (refund.pk, DiscrepancyStatus.AUTO_RESOLVED)
    assert notification.public_id in discrepancy.note
    assert Refund.objects.unscoped().get(pk=refund.pk).status == RefundStatus.SUCCEEDED
    assert not knocked()


@pytest.mark.django_db(transaction=True)
def test_a_notification_already_applied_is_not_applied_again(world, api, shop, wallet, silent_gateway, tmp_path):
    order = _with_request_id(_order(api, world).json())
    # The wallet said it does not know the outcome yet: applied (the payment stays pending), nothing settled.
    assert _deliver(wallet, _v2_body(order, status="U")).status_code == 200
    assert drain_inbox() == 1
    [notification] = arrived().filter(kind="payment", status=NotificationStatus.PROCESSED)
    payment = Payment.objects.unscoped().get(payment_request_id=order["payment_request_id"])
    move, knocked = silent_gateway
    move()

    run = _reconcile(wallet, shop, tmp_path, [payment_line(payment, day=_today())], day=_today())

    assert (run.counts["notifications_replayed"], run.counts["auto_resolved"]) == (0, 0)
    assert _discrepancy(run).status == DiscrepancyStatus.OPEN
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (NotificationStatus.PROCESSED, 1)
    assert Payment.objects.unscoped().get(pk=payment.pk).status == PaymentStatus.PENDING
    assert knocked()  # not settled by the inbox: the wallet was asked (and did not answer)


# --- refunds the wallet's file lacks -----------------------------------------------------------------------


def _refunded(ledger, prefix: str, *, succeeded_at: dt.datetime):
    """A payment paid in the morning and a refund of it that the ledger saw succeed at ``succeeded_at``."""
    [payment] = ledger.payments(prefix, 1, paid_at=at(DAY, 600))
    [refund] = ledger.refunds(f"{prefix}-refund", [payment])
    with time_machine.travel(succeeded_at, tick=False):
        record_event(
            model=Refund,
            row=refund,
            from_status=RefundStatus.PROCESSING,
            to=RefundStatus.SUCCEEDED,
            source="test",
            reason="",
        )
    return payment, refund


def test_a_succeeded_refund_the_file_lacks_is_missing_in_wallet_with_its_evidence(world, tmp_path):
    credential, ledger = _of(world)
    payment, refund = _refunded(ledger, "lacking", succeeded_at=at(DAY, 7200))
    path = write_file(tmp_path / "day.csv", [payment_line(payment)])

    run = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)

    assert run.counts[Reason.MISSING_IN_WALLET] == 1
    assert run.counts["matched"] == 1
    discrepancy = _discrepancy(run)
    assert (discrepancy.reason, discrepancy.refund_id, discrepancy.line_no) == (
        Reason.MISSING_IN_WALLET,
        refund.pk,
        None,
    )
    assert discrepancy.merchant_id == refund.merchant_id
    assert discrepancy.platform["refund"] | {"succeeded_at": None} == {
        "id": refund.public_id,
        "refund_request_id": refund.refund_request_id,
        "wallet_refund_id": refund.wallet_refund_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "status": RefundStatus.SUCCEEDED,
        "succeeded_at": None,
    }
    assert dt.datetime.fromisoformat(discrepancy.platform["refund"]["succeeded_at"]) == at(DAY, 7200)
    assert discrepancy.platform["payment"]["payment_request_id"] == payment.payment_request_id


def test_a_succeeded_refund_the_file_names_or_that_succeeded_another_day_is_not_reported(world, tmp_path):
    credential, ledger = _of(world)
    named, named_refund = _refunded(ledger, "named", succeeded_at=at(DAY, 7200))
    earlier, _ = _refunded(ledger, "earlier", succeeded_at=at(DAY, -600))
    path = write_file(
        tmp_path / "day.csv", [payment_line(named), refund_line(named_refund, named), payment_line(earlier)]
    )

    run = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)

    assert run.counts["matched"] == run.counts["lines"] == 3
    assert not any(run.counts[reason] for reason in Reason.values)


def test_a_refund_the_ledger_dates_today_that_an_earlier_file_settled_is_not_reported(world, tmp_path):
    credential, ledger = _of(world)
    payment, refund = _refunded(ledger, "early", succeeded_at=at(DAY, 60))
    day_before = DAY - dt.timedelta(days=1)
    assert day_before >= DAY - SETTLED_BEFORE_DAYS
    before = write_file(tmp_path / "before.csv", [refund_line(refund, payment, day=day_before)])
    reconciliation_run(super_app=credential.super_app, day=day_before, credential=credential, file_path=before)
    path = write_file(tmp_path / "day.csv", [payment_line(payment)])

    run = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)

    assert not any(run.counts[reason] for reason in Reason.values)
