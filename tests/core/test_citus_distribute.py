"""``citus_distribute``: what plain PostgreSQL can check of the move to Citus. ``--prepare`` gives every
distributed table its ``(merchant_id, id)`` key and ``(merchant_id, …_id)`` foreign keys, and refuses, changing
nothing, when a row already points at another merchant's. (DDL is transactional: each test's changes go with
its transaction.)"""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from apps.core.distribution import distributed_tables
from apps.payments.models import Order, Payment


def _keys() -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.conrelid::regclass::text,
                      array(SELECT attname FROM pg_attribute a WHERE a.attrelid = c.conrelid
                            AND a.attnum = ANY (c.conkey) ORDER BY array_position(c.conkey, a.attnum))
               FROM pg_constraint c WHERE c.contype = 'p'"""
        )
        return {table: columns for table, columns in cursor.fetchall() if table in distributed_tables()}


def _composite_foreign_keys() -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND array_length(conkey, 1) = 2"
        )
        return set(cursor.fetchall())


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
def test_without_citus_it_says_what_to_do():
    expected = "CREATE EXTENSION citus" if connection.vendor == "postgresql" else "Citus runs on PostgreSQL"
    with pytest.raises(CommandError, match=expected):
        _run()


@pytest.mark.postgres
def test_sql_prints_the_whole_move_and_changes_nothing(world):
    before = _keys()

    sql = _run("--sql", "--worker", "worker-1", "--worker", "worker-2:5433")

    assert "SELECT citus_add_node('worker-2', 5433);" in sql
    assert "SELECT create_reference_table('merchants_merchant');" in sql
    assert "create_distributed_table('payments_order', 'merchant_id', colocate_with => 'none')" in sql
    for table in distributed_tables() - {"payments_order"}:
        assert f"create_distributed_table('{table}', 'merchant_id', colocate_with => 'payments_order')" in sql
    assert sql.index("create_reference_table('merchants_isv')") < sql.index(
        "create_reference_table('merchants_merchant')"
    )
    assert _keys() == before


@pytest.mark.postgres
def test_prepare_keeps_every_row_within_its_merchant(world):
    assert set(map(tuple, _keys().values())) == {("id",)}

    assert "Done:" in _run("--prepare")

    assert set(map(tuple, _keys().values())) == {("merchant_id", "id")}
    assert ("payments_refund", "payments_payment") in _composite_foreign_keys()
    assert ("webhooks_webhookdelivery", "webhooks_webhookdelivery") in _composite_foreign_keys()
    assert "Done: 0 statements" in _run("--prepare")  # nothing left to do
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
