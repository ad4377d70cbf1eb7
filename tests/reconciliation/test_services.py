"""Reconciliation runs on files given to them: rejection, idempotency, tenancy, the cut-off."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.core.errors import ApplicationError, NotFoundError
from apps.core.tenancy import Principal
from apps.merchants.models import WalletCredential
from apps.merchants.services import wallet_credential_create
from apps.miniprograms.models import MiniProgram
from apps.miniprograms.services import mini_program_create
from apps.payments.models import Payment
from apps.reconciliation import selectors
from apps.reconciliation.models import (
    Discrepancy,
    DiscrepancyStatus,
    Reason,
    ReconciliationRun,
    RunStatus,
    SettlementFile,
    SettlementLine,
)
from apps.reconciliation.services import (
    RUN_ABANDONED_AFTER,
    TIMING_CUTOFF_WINDOW,
    discrepancy_resolve,
    reconciliation_run,
)
from apps.superapps.models import SuperApp, TradePayMode
from tests.conftest import _test_key_pair
from tests.reconciliation.builders import DAY, Ledger, at, payment_line, write_file


def _of(world, label="a1"):
    credential = WalletCredential.objects.unscoped().select_related("super_app").get(client_id=f"canary-client-{label}")
    mini_program = MiniProgram.objects.unscoped().get(app_id=f"canary-app-{label}")
    return credential, Ledger(mini_program)


def _isv_level(world):
    """ISV a's own client id at a super app where its merchants have none: one file for both merchants."""
    isv = world.a.isv
    super_app = SuperApp.objects.create(
        code="isv-wallet",
        name="ISV wallet",
        gateway_base_url="https://isv.invalid/api",
        wallet_public_key_pem="-",
        trade_pay_modes=[TradePayMode.PAYMENT_URL],
    )
    credential = wallet_credential_create(
        isv=isv, super_app=super_app, client_id="isv-level-a", private_key_pem=_test_key_pair()[0]
    )
    ledgers = []
    for tenant in world.a.merchants:
        mini_program = mini_program_create(
            merchant=tenant.merchant,
            super_app=super_app,
            app_id=f"isv-app-{tenant.merchant.pk}",
            name="Shop",
            trade_pay_mode=TradePayMode.PAYMENT_URL,
            default_currency="USD",
        ).mini_program
        ledgers.append(Ledger(mini_program))
    return credential, ledgers


def _counts():
    return {
        model.__name__: model.objects.unscoped().count()
        for model in (SettlementFile, ReconciliationRun, SettlementLine, Discrepancy)
    }


def test_a_malformed_file_is_rejected_with_its_line_numbers_and_nothing_imported(world, tmp_path):
    credential, ledger = _of(world)
    payments = ledger.payments("pay", 3, paid_at=at(DAY, 600))
    lines = [payment_line(p) for p in payments]
    lines[1]["amount"] = "12.50"
    lines[2]["settlement_date"] = "2026-11-20"
    path = write_file(tmp_path / "bad.csv", lines)
    with path.open("a") as out:
        out.write("PAYMENT,only,three\n")
    ledger_before = list(Payment.objects.unscoped().order_by("pk").values_list("status", "updated_at"))

    run = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)

    assert run.status == RunStatus.REJECTED
    assert run.error_code == "reconciliation.malformed_file"
    assert [error["line"] for error in run.errors] == [3, 4, 5]
    assert "amount '12.50'" in run.errors[0]["message"]
    assert run.counts == {"lines": 4, "malformed": 3}
    assert not SettlementLine.objects.unscoped().filter(run=run).exists()
    assert not Discrepancy.objects.unscoped().filter(run=run).exists()
    assert list(Payment.objects.unscoped().order_by("pk").values_list("status", "updated_at")) == ledger_before

    again = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)
    assert again.pk == run.pk  # the same bad bytes get the same verdict, once


def test_a_file_with_a_wrong_header_is_rejected_at_line_one(world, tmp_path):
    credential, _ = _of(world)
    path = tmp_path / "header.csv"
    path.write_text("type,id\nPAYMENT,1\n")

    run = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)

    assert run.status == RunStatus.REJECTED
    assert run.errors[0]["line"] == 1


def test_the_same_file_imported_twice_changes_nothing(world, tmp_path):
    credential, ledger = _of(world)
    payments = ledger.payments("pay", 5, paid_at=at(DAY, 600))
    path = write_file(tmp_path / "day.csv", [payment_line(p) for p in payments[:4]])
    first = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)
    before = _counts()
    copy = write_file(tmp_path / "copy.csv", [payment_line(p) for p in payments[:4]])

    second = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=copy)

    assert second.pk == first.pk
    assert _counts() == before
    assert first.counts["matched"] == 4
    assert first.counts[Reason.MISSING_IN_WALLET] == 1


def test_a_super_app_with_several_client_ids_needs_one_named(world, tmp_path):
    credential, _ = _of(world)
    path = write_file(tmp_path / "day.csv", [])
    before = _counts()

    with pytest.raises(ApplicationError) as raised:
        reconciliation_run(super_app=credential.super_app, day=DAY, file_path=path)

    assert raised.value.code == "reconciliation.credential_required"
    assert _counts() == before


def test_discrepancies_are_seen_only_by_their_tenant(world, tmp_path):
    credential, ledger = _of(world)
    payments = ledger.payments("pay", 2, paid_at=at(DAY, 600))
    path = write_file(tmp_path / "day.csv", [payment_line(payments[0], amount=1)])
    run = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)
    a, b = world.a, world.b
    a1, a2 = (m.merchant for m in a.merchants)

    def visible(principal):
        return set(Discrepancy.objects.visible_to(principal).filter(run=run).values_list("reason", flat=True))

    assert visible(Principal.system(isv_id=a.isv.pk, merchant_id=a1.pk)) == {
        Reason.AMOUNT_MISMATCH,
        Reason.MISSING_IN_WALLET,
    }
    assert visible(Principal.system(isv_id=a.isv.pk)) == visible(Principal.system(isv_id=a.isv.pk, merchant_id=a1.pk))
    assert visible(Principal.system(isv_id=a.isv.pk, merchant_id=a2.pk)) == set()
    assert visible(Principal.system(isv_id=b.isv.pk)) == set()
    assert not ReconciliationRun.objects.visible_to(Principal.system(isv_id=b.isv.pk)).filter(pk=run.pk).exists()
    as_a2 = Principal.system(isv_id=a.isv.pk, merchant_id=a2.pk)
    assert not ReconciliationRun.objects.visible_to(as_a2).filter(pk=run.pk).exists()


def test_an_isv_level_file_puts_each_discrepancy_with_the_merchant_it_is_about(world, tmp_path):
    isv = world.a.isv
    isv_credential, (_, ledger) = _isv_level(world)
    (payment,) = ledger.payments("a2pay", 1, paid_at=at(DAY, 600))
    path = write_file(tmp_path / "isv.csv", [payment_line(payment, currency="EUR")])

    run = reconciliation_run(super_app=isv_credential.super_app, day=DAY, credential=isv_credential, file_path=path)

    a2 = world.a.merchants[1].merchant
    (found,) = Discrepancy.objects.visible_to(Principal.system(isv_id=isv.pk, merchant_id=a2.pk)).filter(run=run)
    assert found.reason == Reason.CURRENCY_MISMATCH
    assert found.wallet["currency"] == "EUR"
    assert found.platform["payment"]["currency"] == "USD"
    a1 = world.a.merchants[0].merchant
    assert (
        not Discrepancy.objects.visible_to(Principal.system(isv_id=isv.pk, merchant_id=a1.pk)).filter(run=run).exists()
    )


def test_a_payment_paid_before_the_cutoff_is_closed_by_the_next_days_file(world, tmp_path):
    credential, ledger = _of(world)
    late = ledger.payments("late", 2, paid_at=at(DAY, 86_400 - TIMING_CUTOFF_WINDOW.seconds + 60))
    path = write_file(tmp_path / "day.csv", [])
    first = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)
    assert first.counts[Reason.TIMING_CUTOFF] == 2
    next_day = DAY.replace(day=DAY.day + 1)
    next_path = write_file(tmp_path / "next.csv", [payment_line(late[0], day=next_day)])

    second = reconciliation_run(
        super_app=credential.super_app, day=next_day, credential=credential, file_path=next_path
    )

    assert second.counts["lines"] == second.counts["matched"] == second.counts["closed_earlier"] == 1
    assert not any(second.counts[reason] for reason in Reason.values)
    statuses = dict(
        Discrepancy.objects.visible_to(Principal.operator())
        .filter(run=first)
        .values_list("payment__payment_request_id", "status")
    )
    assert statuses == {"late-0": DiscrepancyStatus.AUTO_RESOLVED, "late-1": DiscrepancyStatus.OPEN}


def test_a_person_closes_an_open_discrepancy_once(world, tmp_path):
    credential, ledger = _of(world)
    ledger.payments("pay", 1, paid_at=at(DAY, 600))
    run = reconciliation_run(
        super_app=credential.super_app, day=DAY, credential=credential, file_path=write_file(tmp_path / "d.csv", [])
    )
    (discrepancy,) = Discrepancy.objects.visible_to(Principal.operator()).filter(run=run)

    closed = discrepancy_resolve(discrepancy=discrepancy, user=world.operator, note="wallet confirmed by mail")

    assert closed.status == DiscrepancyStatus.RESOLVED
    assert closed.resolved_by == world.operator
    with pytest.raises(ApplicationError) as raised:
        discrepancy_resolve(discrepancy=discrepancy, user=world.operator, note="again", ignore=True)
    assert raised.value.code == "reconciliation.discrepancy_closed"
    stored = Discrepancy.objects.visible_to(Principal.operator()).get(pk=discrepancy.pk)
    assert stored.note == "wallet confirmed by mail"


@pytest.mark.postgres
def test_on_postgresql_lines_are_loaded_by_copy_not_inserts(world, tmp_path):
    credential, ledger = _of(world)
    payments = ledger.payments("pay", 50, paid_at=at(DAY, 600))
    path = write_file(tmp_path / "day.csv", [payment_line(p) for p in payments] + [payment_line(payments[0])])

    with CaptureQueriesContext(connection) as queries:
        run = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)

    assert connection.vendor == "postgresql"
    assert not [q for q in queries.captured_queries if 'INSERT INTO "reconciliation_settlementline"' in q["sql"]]
    assert SettlementLine.objects.unscoped().filter(run=run).count() == 51
    assert run.counts["matched"] == 50
    assert run.counts[Reason.DUPLICATE_IN_FILE] == 1


def test_a_merchant_lists_and_gets_only_its_own_discrepancies_even_from_its_isvs_file(world, tmp_path):
    isv = world.a.isv
    isv_credential, (ledger_a1, ledger_a2) = _isv_level(world)
    (mine,) = ledger_a1.payments("a1pay", 1, paid_at=at(DAY, 600))
    (theirs,) = ledger_a2.payments("a2pay", 1, paid_at=at(DAY, 600))
    path = write_file(tmp_path / "isv.csv", [payment_line(mine, amount=5), payment_line(theirs, amount=6)])
    run = reconciliation_run(super_app=isv_credential.super_app, day=DAY, credential=isv_credential, file_path=path)
    a1, a2 = (m.merchant for m in world.a.merchants)
    as_a1 = Principal.system(isv_id=isv.pk, merchant_id=a1.pk)

    listed = list(selectors.discrepancy_list(principal=as_a1, run_id=run.public_id))

    assert [d.wallet["payment_request_id"] for d in listed] == ["a1pay-0"]
    assert len(selectors.discrepancy_list(principal=Principal.system(isv_id=isv.pk), run_id=run.public_id)) == 2
    as_b = Principal.system(isv_id=world.b.isv.pk)
    assert not selectors.discrepancy_list(principal=as_b, run_id=run.public_id).exists()
    as_a2 = Principal.system(isv_id=isv.pk, merchant_id=a2.pk)
    theirs_found = selectors.discrepancy_list(principal=as_a2, run_id=run.public_id).get()
    with pytest.raises(NotFoundError) as raised:
        selectors.discrepancy_get(principal=as_a1, discrepancy_id=theirs_found.public_id)
    assert raised.value.code == "reconciliation.discrepancy_not_found"
    assert selectors.discrepancy_get(principal=as_a1, discrepancy_id=listed[0].public_id) == listed[0]
    assert (
        not selectors.run_list(principal=as_a1).filter(pk=run.pk).exists()
    )  # the file is the ISV's, not the merchant's


def test_a_run_abandoned_long_ago_does_not_block_the_file(world, tmp_path, time_machine):
    credential, ledger = _of(world)
    (payment,) = ledger.payments("pay", 1, paid_at=at(DAY, 600))
    path = write_file(tmp_path / "day.csv", [payment_line(payment)])
    first = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)
    ReconciliationRun.objects.unscoped().filter(pk=first.pk).update(status=RunStatus.RUNNING)  # as if its worker died
    assert reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path) == first

    time_machine.move_to(timezone.now() + RUN_ABANDONED_AFTER + dt.timedelta(minutes=1))
    again = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)

    assert again.pk != first.pk
    assert again.status == RunStatus.SUCCEEDED
    assert again.counts["matched"] == 1
    first.refresh_from_db()
    assert (first.status, first.error_code) == (RunStatus.FAILED, "reconciliation.abandoned")
