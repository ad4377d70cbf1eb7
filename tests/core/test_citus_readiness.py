"""The schema stays distributable on merchant_id: the models keep the rules of apps/core/distribution.py, and
the ORM's joins among distributed tables tie their merchant_id together (the whole suite's queries are checked
by tests/distributable.py; these tests show what each check catches)."""

from __future__ import annotations

import pytest
from django.db import connection, models
from django.test.utils import isolate_apps

from apps.core import distribution
from apps.core.distribution import MerchantForeignKey, Placement, readiness_problems
from apps.merchants.models import Merchant
from apps.payments.models import Order, Refund
from apps.webhooks.models import WebhookDelivery
from tests.distributable import cross_shard_joins


def test_every_model_has_a_placement_and_keeps_the_rules():
    assert readiness_problems() == []


@pytest.mark.django_db
def test_every_distributed_model_carries_a_non_null_merchant_id():
    distributed = [label for label, where in distribution.PLACEMENTS.items() if where == Placement.DISTRIBUTED]
    assert "payments.Order" in distributed
    assert len(distributed) >= 15
    for table in distribution.distributed_tables():
        columns = {c.name: c for c in connection.introspection.get_table_description(connection.cursor(), table)}
        assert "merchant_id" in columns, table
        assert not columns["merchant_id"].null_ok, table


@isolate_apps("tests")
def test_the_checks_catch_each_way_a_model_could_break_distribution(monkeypatch):
    class Parent(models.Model):  # noqa: DJ008
        merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT)
        code = models.CharField(max_length=10, unique=True)

        class Meta:
            app_label = "tests"

    class Child(models.Model):  # noqa: DJ008
        merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT)
        parent = models.ForeignKey(Parent, on_delete=models.PROTECT)
        number = models.IntegerField()

        class Meta:
            app_label = "tests"
            constraints = [models.UniqueConstraint(fields=["parent", "number"], name="child_number_unique")]

    class NoMerchant(models.Model):  # noqa: DJ008
        class Meta:
            app_label = "tests"

    class Sibling(models.Model):  # noqa: DJ008
        merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT)
        parent = MerchantForeignKey(Parent, on_delete=models.PROTECT)

        class Meta:
            app_label = "tests"

    class Shared(models.Model):  # noqa: DJ008
        parent = models.ForeignKey(Parent, on_delete=models.PROTECT)

        class Meta:
            app_label = "tests"

    class Log(models.Model):  # noqa: DJ008
        merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, null=True)
        parent = models.ForeignKey(Parent, on_delete=models.PROTECT)

        class Meta:
            app_label = "tests"

    class Unplaced(models.Model):  # noqa: DJ008
        class Meta:
            app_label = "tests"

    places = {
        "tests.Parent": Placement.DISTRIBUTED,
        "tests.Child": Placement.DISTRIBUTED,
        "tests.NoMerchant": Placement.DISTRIBUTED,
        "tests.Sibling": Placement.DISTRIBUTED,
        "tests.Shared": Placement.REFERENCE,
        "tests.Log": Placement.COORDINATOR,
    }
    monkeypatch.setattr(distribution, "PLACEMENTS", {**distribution.PLACEMENTS, **places})

    problems = readiness_problems([Parent, Child, NoMerchant, Sibling, Shared, Log, Unplaced])

    assert problems == [
        "tests.Parent.code is unique on its own; make it unique together with merchant.",
        "tests.Child's unique constraint child_number_unique does not include merchant.",
        "tests.Child.parent joins two distributed tables; make it a MerchantForeignKey or MerchantOneToOneField.",
        "tests.NoMerchant is distributed but has no merchant.",
        "tests.Shared.parent points from a reference table at a distributed one, which Citus cannot keep.",
        "tests.Log.parent joins a distributed table; make it a MerchantForeignKey (with a merchant).",
        "tests.Log.parent is a constraint Citus cannot keep; list it in UNENFORCED_ON_CITUS.",
        "tests.Unplaced has no placement in apps.core.distribution.PLACEMENTS.",
    ]


def _sql(queryset) -> str:
    sql, _params = queryset.query.sql_with_params()
    return sql


def test_orm_joins_among_distributed_tables_tie_merchant_id_together():
    forward = Refund.objects.unscoped().select_related("payment__order", "order")
    backward = Order.objects.unscoped().filter(refunds__amount__gt=1, payments__status="succeeded")
    self_join = WebhookDelivery.objects.unscoped().filter(replay_of__status="failed")
    for queryset in (forward, backward, self_join):
        sql = _sql(queryset)
        assert " JOIN " in sql
        assert cross_shard_joins(sql, connection.vendor) == []


def test_a_join_without_the_merchant_equality_is_reported(monkeypatch):
    monkeypatch.setattr(distribution._MerchantJoin, "get_extra_restriction", lambda self, alias, related_alias: None)
    sql = _sql(Refund.objects.unscoped().select_related("payment"))

    problems = cross_shard_joins(sql, connection.vendor)

    assert len(problems) == 1
    assert problems[0].startswith("joins payments_refund, payments_payment without tying their merchant_id together")


@pytest.mark.parametrize(
    ("sql", "reported"),
    [
        ('SELECT 1 FROM "payments_refund" INNER JOIN "payments_payment" ON ("payments_refund"."payment_id" = '
         '"payments_payment"."id")', True),
        ('SELECT 1 FROM "payments_refund" INNER JOIN "payments_payment" ON ("payments_refund"."payment_id" = '
         '"payments_payment"."id") WHERE "payments_refund"."merchant_id" = "payments_payment"."merchant_id"', False),
        # An equality under OR does not hold the two together.
        ('SELECT 1 FROM "payments_refund" INNER JOIN "payments_payment" ON ("payments_refund"."payment_id" = '
         '"payments_payment"."id" OR "payments_refund"."merchant_id" = "payments_payment"."merchant_id")', True),
        # A distributed table joined to a reference table needs nothing.
        ('SELECT 1 FROM "payments_order" INNER JOIN "merchants_merchant" ON ("payments_order"."merchant_id" = '
         '"merchants_merchant"."id")', False),
        # Three tables: the third must be tied to the other two as well.
        ('SELECT 1 FROM "payments_refund" T1 INNER JOIN "payments_payment" T2 ON (T1."payment_id" = T2."id" AND '
         'T1."merchant_id" = T2."merchant_id") INNER JOIN "payments_order" T3 ON (T2."order_id" = T3."id")', True),
    ],
)  # fmt: skip
def test_raw_joins(sql, reported):
    assert bool(cross_shard_joins(sql)) is reported
