"""``citus_distribute``: what plain PostgreSQL can check of the move to Citus. ``--prepare`` gives every
distributed table its ``(merchant_id, id)`` key and ``(merchant_id, …_id)`` foreign keys, and refuses, changing
nothing, when a row already points at another merchant's. (DDL is transactional: each test's changes go with
its transaction.)"""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from apps.core.distribution import distributed_tables, key_constraints
from apps.payments.models import Order, Payment


def _keys() -> dict[str, list[str]]:
    """Each distributed table's primary key columns."""
    tables = distributed_tables()
    return {
        table: columns for table, _name, _target, kind, columns in key_constraints() if kind == "p" and table in tables
    }


def _composite_foreign_keys() -> set[tuple[str, str]]:
    """(table, referenced table) of each two-column foreign key."""
    return {
        (table, target)
        for table, _name, target, kind, columns in key_constraints()
        if kind == "f" and len(columns) == 2
    }


def _run(*args: str) -> str:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # The fixtures' inserts leave deferred checks pending in the test's transaction; ALTER TABLE waits
            # for none (a real run starts a transaction of its own).
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    out = io.StringIO()
    call_command("citus_distribute", *args, stdout=out)
    return out.getvalue()


def _payment_and_foreign_order() -> tuple[Payment, Order]:
    payment = Payment.objects.unscoped().select_related("order").first()
    foreign = Order.objects.unscoped().exclude(merchant_id=payment.merchant_id).first()
    return payment, foreign


def _move(payment: Payment, *, to: Order) -> None:
    """Point the payment at another merchant's order, as only raw SQL could, and check constraints now."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE payments_payment SET order_id = %s WHERE id = %s", [to.pk, payment.pk])
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.mark.django_db
def test_it_needs_postgresql():
    if connection.vendor == "postgresql":
        pytest.skip("this database is PostgreSQL")
    with pytest.raises(CommandError, match="Citus runs on PostgreSQL"):
        _run()


@pytest.mark.postgres
def test_it_asks_for_the_pre_flight_then_for_citus(world):
    with pytest.raises(CommandError, match="Run citus_distribute --prepare first"):
        _run()
    _run("--prepare")
    with pytest.raises(CommandError, match="CREATE EXTENSION citus"):
        _run()


@pytest.mark.postgres
def test_sql_prints_the_move_and_changes_nothing(world):
    before = _keys()

    unprepared = _run("--sql")

    assert 'ADD PRIMARY KEY ("merchant_id", "id")' in unprepared
    assert "run --prepare, then --sql again" in unprepared
    assert _keys() == before

    _run("--prepare")
    sql = _run("--sql", "--coordinator", "coordinator", "--worker", "worker-1", "--worker", "worker-2:5433")

    assert "SELECT citus_add_node('worker-2', 5433);" in sql
    assert "SELECT create_reference_table('merchants_merchant');" in sql
    assert "create_distributed_table('payments_order', 'merchant_id', colocate_with => 'none')" in sql
    for table in distributed_tables() - {"payments_order"}:
        assert f"create_distributed_table('{table}', 'merchant_id', colocate_with => 'payments_order')" in sql
    isv, merchant = (sql.index(f"create_reference_table('merchants_{t}')") for t in ("isv", "merchant"))
    assert isv < merchant  # each reference table after those it points at
    # The merchant pairs of foreign keys make way while the tables are sharded, and come back after.
    drop = sql.index('ALTER TABLE "payments_refund" DROP CONSTRAINT "payments_refund_payment_id_merchant_fk"')
    add = sql.index('ALTER TABLE "payments_refund" ADD CONSTRAINT "payments_refund_payment_id_merchant_fk"')
    assert drop < sql.index("create_distributed_table") < add


@pytest.mark.postgres
def test_prepare_keeps_every_row_within_its_merchant(world):
    assert set(map(tuple, _keys().values())) == {("id",)}

    assert "Prepared:" in _run("--prepare")

    assert set(map(tuple, _keys().values())) == {("merchant_id", "id")}
    assert ("payments_refund", "payments_payment") in _composite_foreign_keys()
    assert ("webhooks_webhookdelivery", "webhooks_webhookdelivery") in _composite_foreign_keys()
    assert "Prepared: 0 statements" in _run("--prepare")  # nothing left to do
    # The ORM works as before on the widened keys …
    payment, foreign = _payment_and_foreign_order()
    assert Payment.objects.unscoped().select_related("order").get(pk=payment.pk).order == payment.order
    # … and the database refuses a row that points at another merchant's.
    with pytest.raises(IntegrityError), transaction.atomic():
        _move(payment, to=foreign)


@pytest.mark.postgres
def test_prepare_refuses_data_that_crosses_merchants_and_changes_nothing(world):
    payment, foreign = _payment_and_foreign_order()
    _move(payment, to=foreign)
    before = _keys()

    with pytest.raises(CommandError, match="Nothing was changed: a row points at another merchant's row"):
        _run("--prepare")

    assert _keys() == before
