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
from tests.reconciliation.builders import DAY, FEE_BPS, Ledger, at, fee_of, payment_line, write_file


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


# One field changed per case. PostgreSQL checks the lines in SQL and SQLite in Python: both must give the
# same verdict, or a line would load on one database and be refused on the other.
MALFORMED = [
    {"record_type": "CHARGE"},
    {"record_type": "payment"},
    {"payment_id": ""},
    {"payment_request_id": "x" * 65},
    {"refund_request_id": "r-1"},  # a PAYMENT has no refund ids
    {"currency": "usd"},
    {"currency": "US"},
    {"currency": "ÜSD"},
    {"amount": "12.50"},
    {"amount": "+1250"},
    {"amount": "01250"},
    {"amount": "-0"},
    {"amount": " 1250"},
    {"amount": "0"},
    {"amount": "-1250"},  # a PAYMENT is positive
    {"amount": "1" * 19},
    {"fee": "1e3"},
    {"net": ""},
    {"transaction_time": "2026-11-21 01:00:00Z"},
    {"transaction_time": "2026-11-21T01:00:00"},  # no offset
    {"transaction_time": "2026-11-21T01:00Z"},
    {"transaction_time": "2026-11-21T01:00:00.1234567Z"},
    {"transaction_time": "2026-11-21T01:00:00.1234567+00:00"},
    {"transaction_time": "2026-11-21T01:00:00+8:00"},
    {"transaction_time": "2026-11-21T01:00:00+08"},
    {"transaction_time": "2026-11-21T01:00:00.Z"},
    {"transaction_time": "2026-02-30T01:00:00Z"},  # the shape is right, the day is not
    {"transaction_time": "2026-11-21T25:00:00Z"},
    {"transaction_time": "now"},
    {"settlement_date": "2026-11-22"},
]
WELL_FORMED = [
    {},
    {"transaction_time": "2026-11-21T09:00:00+08:00"},
    {"transaction_time": "2026-11-20T20:00:00-05:00"},
    {"transaction_time": "2026-11-21T01:00:00.5Z"},
    {"transaction_time": "2026-11-21T01:00:00.123456+00:00"},
    {"transaction_time": "2026-11-21T01:00:00.123456Z"},
    {"payment_id": "w" * 64, "fee": 0},
]


@pytest.mark.parametrize("change", MALFORMED, ids=lambda change: repr(change)[:50])
def test_every_engine_refuses_the_same_malformed_lines(world, tmp_path, change):
    credential, ledger = _of(world)
    payments = ledger.payments("pay", 2, paid_at=at(DAY, 600))
    path = write_file(tmp_path / "bad.csv", [payment_line(payments[0]), payment_line(payments[1]) | change])

    run = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)

    assert run.status == RunStatus.REJECTED, run.counts
    assert [error["line"] for error in run.errors] == [3]
    assert not SettlementLine.objects.unscoped().filter(run=run).exists()


@pytest.mark.parametrize("change", WELL_FORMED, ids=lambda change: repr(change)[:50])
def test_every_engine_loads_the_same_well_formed_lines(world, tmp_path, change):
    credential, ledger = _of(world)
    (payment,) = ledger.payments("pay", 1, paid_at=at(DAY, 600))
    path = write_file(tmp_path / "good.csv", [payment_line(payment) | change])

    run = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)

    assert run.status == RunStatus.SUCCEEDED, run.errors
    assert SettlementLine.objects.unscoped().filter(run=run, payment=payment).count() == 1


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


def test_with_a_fee_schedule_a_fee_that_adds_up_but_is_not_the_agreed_one_is_unexpected(world, tmp_path):
    credential, ledger = _of(world)
    agreed, overcharged, odd = ledger.payments("fee", 3, paid_at=at(DAY, 600))
    lines = [
        payment_line(agreed),  # the builders charge FEE_BPS, rounded half up
        payment_line(overcharged, fee=fee_of(overcharged.amount) + 1),  # net = amount - fee still holds
        payment_line(odd, fee=0),
    ]
    path = write_file(tmp_path / "fees.csv", lines)
    SuperApp.objects.filter(pk=credential.super_app_id).update(settlement_fee_bps=FEE_BPS)
    credential.super_app.refresh_from_db()

    run = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)

    found = Discrepancy.objects.unscoped().filter(run=run).values_list("reason", "payment_id")
    assert sorted(found) == sorted([(Reason.FEE_UNEXPECTED, overcharged.pk), (Reason.FEE_UNEXPECTED, odd.pk)])
    assert run.counts["matched"] == 1


def test_without_a_fee_schedule_only_fees_that_do_not_add_up_are_unexpected(world, tmp_path):
    credential, ledger = _of(world)
    cheap, wrong = ledger.payments("fee", 2, paid_at=at(DAY, 600))
    lines = [payment_line(cheap, fee=1), payment_line(wrong) | {"net": wrong.amount}]
    path = write_file(tmp_path / "fees.csv", lines)
    assert credential.super_app.settlement_fee_bps is None

    run = reconciliation_run(super_app=credential.super_app, day=DAY, credential=credential, file_path=path)

    found = Discrepancy.objects.unscoped().filter(run=run).values_list("reason", "payment_id")
    assert list(found) == [(Reason.FEE_UNEXPECTED, wrong.pk)]


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
def test_on_postgresql_the_lines_never_pass_through_python_and_the_queries_do_not_grow_with_the_file(world, tmp_path):
    credential, ledger = _of(world)
    statements = []
    for day, size in ((DAY, 20), (DAY + dt.timedelta(days=1), 200)):
        payments = ledger.payments(f"pay{size}", size, paid_at=at(day, 600))
        lines = [payment_line(p, day=day) for p in payments] + [payment_line(payments[0], day=day)]
        path = write_file(tmp_path / f"{day}.csv", lines)
        with CaptureQueriesContext(connection) as queries:
            run = reconciliation_run(super_app=credential.super_app, day=day, credential=credential, file_path=path)
        assert run.counts["matched"] == size
        assert run.counts[Reason.DUPLICATE_IN_FILE] == 1
        assert SettlementLine.objects.unscoped().filter(run=run, payment__isnull=False).count() == size + 1
        statements.append([q["sql"] for q in queries.captured_queries])

    assert connection.vendor == "postgresql"
    small, large = statements
    assert len(small) == len(large)
    inserts = [sql for sql in large if 'INSERT INTO "reconciliation_settlementline"' in sql]
    assert len(inserts) == 1
    assert 'FROM "reconciliation_raw_' in inserts[0]  # from the COPY's table, not from rows sent by Python


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
