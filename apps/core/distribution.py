"""Where each table lives on a Citus cluster, and the rules that keep the schema distributable.

Merchant-owned tables are *distributed* on ``merchant_id`` and co-located: one merchant's orders, payments,
refunds, webhooks and sessions sit on one worker, and a join among them runs there. Small, shared tables that
those rows point at, or that are looked up across merchants (super apps, ISVs, merchants, mini programs by app
id, credentials by client id, API keys by prefix, users), are *reference* tables, copied to every worker.
ISV-level records and logs (audit, inbound notifications, wallet evidence, reconciliation, idempotency) stay
on the *coordinator*. ``readiness_problems`` checks the rules on the models (tests/distributable.py checks
the suite's SQL), and ``citus_distribute`` applies the placement (deploy/README.md, "Moving to Citus").
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Iterable

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import connection, models
from django.db.models.lookups import Exact
from django.db.models.sql.where import WhereNode

DISTRIBUTION_COLUMN = "merchant_id"


class Placement(enum.StrEnum):
    DISTRIBUTED = "distributed"
    REFERENCE = "reference"
    COORDINATOR = "coordinator"


_D, _R, _C = Placement.DISTRIBUTED, Placement.REFERENCE, Placement.COORDINATOR

#: Every model of ``apps.*``; a new model must take a place here (``readiness_problems`` says so).
PLACEMENTS: dict[str, Placement] = {
    "superapps.SuperApp": _R,
    "merchants.Isv": _R,
    "merchants.Merchant": _R,
    "merchants.WalletCredential": _R,
    "accounts.User": _R,
    "accounts.Membership": _R,
    "accounts.ApiKey": _R,
    "miniprograms.MiniProgram": _R,
    "miniprograms.MiniProgramFeature": _R,
    "merchants.BusinessLicense": _D,
    "merchants.Registration": _D,
    "merchants.RegistrationEvent": _D,
    "miniprograms.Product": _D,
    "usersessions.WalletUser": _D,
    "usersessions.UserSession": _D,
    "payments.Order": _D,
    "payments.Payment": _D,
    "payments.PaymentEvent": _D,
    "payments.Refund": _D,
    "payments.PreAuthorization": _D,
    "payments.PreAuthorizationRelease": _D,
    "webhooks.WebhookEvent": _D,
    "webhooks.WebhookDelivery": _D,
    "webhooks.WebhookAttempt": _D,
    "core.IdempotencyRecord": _C,
    "superapps.WalletExchange": _C,
    "accounts.AuditEntry": _C,
    "callbacks.InboundNotification": _C,
    "reconciliation.SettlementFile": _C,
    "reconciliation.ReconciliationRun": _C,
    "reconciliation.SettlementLine": _C,
    "reconciliation.Discrepancy": _C,
    # The sandbox wallet stands in for the super app; it never runs beside a production cluster.
    **{f"sandbox.{name}": _C for name in (
        "WalletKey", "SandboxClient", "SandboxUser", "Balance", "Payment", "Refund", "Capture", "AuthCode",
        "AccessToken", "Registration", "ClassicOrder", "ClassicRefund", "ClassicUnfreeze", "Notification",
        "NotificationAttempt",
    )},
}  # fmt: skip

#: Foreign key constraints from coordinator tables to distributed ones. Citus cannot keep them (a coordinator
#: row may point at any worker), so ``citus_distribute`` drops them and the application keeps them: payments
#: and refunds are never deleted, and a discrepancy only points at rows its run found. (Settlement lines
#: point at them with no constraint to begin with.)
UNENFORCED_ON_CITUS = frozenset({"reconciliation.Discrepancy.payment", "reconciliation.Discrepancy.refund"})


def placement(model: type[models.Model]) -> Placement:
    """Models outside ``apps`` (Django's own: content types, sessions, the admin's log) stay on the
    coordinator."""
    label = model._meta.label
    if label in PLACEMENTS or model.__module__.startswith("apps."):
        return PLACEMENTS[label]
    return Placement.COORDINATOR


@functools.cache
def distributed_tables() -> frozenset[str]:
    return frozenset(m._meta.db_table for m in apps.get_models() if m._meta.label in PLACEMENTS and placement(m) == _D)


class _MerchantJoin:
    """Every join through the field also matches ``merchant_id`` on both sides, so that on Citus the join is
    co-located (one worker, no data moved) whichever way the query filters."""

    def get_extra_restriction(self, alias, related_alias):
        # Subquery push-down passes one alias only; the subquery's own joins carry the condition.
        if alias is None or related_alias is None:
            return None
        own = self.model._meta.get_field("merchant")
        target = self.related_model._meta.get_field("merchant")
        return WhereNode([Exact(target.get_col(alias), own.get_col(related_alias))])


class MerchantForeignKey(_MerchantJoin, models.ForeignKey):
    """A foreign key between two distributed tables; ``citus_distribute`` widens its constraint to
    ``(merchant_id, …_id)``, which also keeps a row from pointing at another merchant's."""


class MerchantOneToOneField(_MerchantJoin, models.OneToOneField):
    """A one-to-one link between two distributed tables. Its column is not unique on its own, which Citus
    cannot keep; the model declares ``unique_per_merchant`` for it instead."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._unique = False


def unique_per_merchant(model_name: str, *fields: str) -> list[models.UniqueConstraint]:
    """Uniqueness on a distributed table: together with ``merchant``, as Citus requires. The values these
    guard (public ids, request ids, token hashes) are random, so they stay unique across merchants too."""
    return [
        models.UniqueConstraint(fields=["merchant", field], name=f"{model_name}_{field}_unique_per_merchant")
        for field in fields
    ]


def readiness_problems(models_to_check: Iterable[type[models.Model]] | None = None) -> list[str]:
    """What would keep the schema from being distributed on ``merchant_id``, one sentence each; empty when
    it is ready. Checked by the test suite and before ``citus_distribute`` changes anything."""
    if models_to_check is None:
        models_to_check = [m for m in apps.get_models() if m.__module__.startswith("apps.")]
    problems: list[str] = []
    for model in models_to_check:
        label = model._meta.label
        if label not in PLACEMENTS:
            problems.append(f"{label} has no placement in apps.core.distribution.PLACEMENTS.")
            continue
        where = placement(model)
        if where == _D:
            problems.extend(_distributed_model_problems(model))
        for field in model._meta.concrete_fields:
            if field.is_relation:
                problems.extend(_foreign_key_problems(model, where, field))
    return problems


def _distributed_model_problems(model: type[models.Model]) -> list[str]:
    label = model._meta.label
    try:
        merchant = model._meta.get_field("merchant")
    except FieldDoesNotExist:
        return [f"{label} is distributed but has no merchant."]
    if merchant.column != DISTRIBUTION_COLUMN or merchant.null:
        return [f"{label}.merchant must be a non-null column named {DISTRIBUTION_COLUMN}."]
    problems = []
    for field in model._meta.concrete_fields:
        if field.unique and not field.primary_key and field.name != "merchant":
            problems.append(f"{label}.{field.name} is unique on its own; make it unique together with merchant.")
    for constraint in model._meta.constraints:
        if isinstance(constraint, models.UniqueConstraint) and "merchant" not in constraint.fields:
            problems.append(f"{label}'s unique constraint {constraint.name} does not include merchant.")
    problems.extend(
        f"{label}'s unique_together {fields} does not include merchant."
        for fields in model._meta.unique_together
        if "merchant" not in fields
    )
    return problems


def _foreign_key_problems(model: type[models.Model], where: Placement, field: models.Field) -> list[str]:
    name = f"{model._meta.label}.{field.name}"
    target = placement(field.related_model)
    if where == _D and target == _D:
        if not isinstance(field, _MerchantJoin):
            return [f"{name} joins two distributed tables; make it a MerchantForeignKey or MerchantOneToOneField."]
        return []
    if where == _D and target == _C:
        return [f"{name} points from a distributed table at a coordinator table, which Citus cannot keep."]
    if where == _R and target != _R:
        return [f"{name} points from a reference table at a {target} one, which Citus cannot keep."]
    if where == _C and target == _D:
        problems = []
        if not isinstance(field, _MerchantJoin):
            problems.append(f"{name} joins a distributed table; make it a MerchantForeignKey (with a merchant).")
        if field.db_constraint and name not in UNENFORCED_ON_CITUS:
            problems.append(f"{name} is a constraint Citus cannot keep; list it in UNENFORCED_ON_CITUS.")
        return problems
    return []


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One statement of the move to Citus. ``on_citus``: a Citus function, run only where Citus is."""

    sql: str
    why: str
    on_citus: bool = False


def _models_placed(where: Placement) -> list[type[models.Model]]:
    return [m for m in apps.get_models() if m._meta.label in PLACEMENTS and placement(m) == where]


def _reference_models_in_order() -> list[type[models.Model]]:
    """Reference tables, each after the reference tables it points at (Citus copies them in that order)."""
    remaining = _models_placed(_R)
    ordered: list[type[models.Model]] = []
    while remaining:
        ready = [
            m
            for m in remaining
            if all(
                f.related_model in ordered or f.related_model is m
                for f in _relations(m)
                if placement(f.related_model) == _R
            )
        ]
        if not ready:
            raise ValueError(f"reference tables point at each other in a cycle: {remaining}")
        ordered.extend(ready)
        remaining = [m for m in remaining if m not in ready]
    return ordered


def _relations(model: type[models.Model]) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if f.is_relation and f.db_constraint]


def _qn(name: str) -> str:
    return connection.ops.quote_name(name)


def key_constraints() -> list[tuple[str, str, str, str, list[str]]]:
    """Primary and foreign keys of the public schema: table, name, referenced table, kind, columns."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.conrelid::regclass::text, c.conname, c.confrelid::regclass::text, c.contype,
                      array(SELECT attname FROM pg_attribute a
                            WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
                            ORDER BY array_position(c.conkey, a.attnum))
               FROM pg_constraint c
               WHERE c.contype IN ('f', 'p') AND c.connamespace = 'public'::regnamespace"""
        )
        return cursor.fetchall()


def prepare_plan() -> list[Step]:
    """The statements that make this database's schema Citus-shaped, on plain PostgreSQL too:

    1. Foreign keys onto distributed tables that name ``id`` alone are dropped: it stops being unique.
       Those in ``UNENFORCED_ON_CITUS`` stay dropped.
    2. Each distributed table's primary key becomes ``(merchant_id, id)``, as Citus requires.
    3. The foreign keys among distributed tables come back as ``(merchant_id, …_id)`` pairs, which also keep
       a row from pointing at another merchant's.

    Reads the live catalog: empty once the schema is prepared.
    """
    tables, constraints = distributed_tables(), key_constraints()
    steps: list[Step] = []
    for table, name, target, kind, columns in constraints:
        if kind == "f" and target in tables and DISTRIBUTION_COLUMN not in columns:
            steps.append(
                Step(f"ALTER TABLE {_qn(table)} DROP CONSTRAINT {_qn(name)}", f"{table}.{columns[0]} names id alone")
            )
    for table, name, _target, kind, columns in constraints:
        if kind == "p" and table in tables and columns != [DISTRIBUTION_COLUMN, "id"]:
            steps.append(
                Step(
                    f"ALTER TABLE {_qn(table)} DROP CONSTRAINT {_qn(name)}, "
                    f"ADD PRIMARY KEY ({_qn(DISTRIBUTION_COLUMN)}, {_qn('id')})",
                    f"{table}'s key must include {DISTRIBUTION_COLUMN}",
                )
            )
    existing = {name for _table, name, *_rest in constraints}
    steps.extend(step for name, step in _merchant_foreign_keys() if name not in existing)
    return steps


def citus_plan(distributed_already: frozenset[str]) -> list[Step]:
    """On a prepared schema, the statements that distribute it (Citus's functions, ``on_citus``).

    Citus shards a table only when every table it points at is already distributed or a reference table, so
    the merchant pairs of foreign keys are dropped first and restored once all are sharded. Reference tables
    go first, each after those it points at; distributed tables are co-located with ``payments_order``.
    Empty once every table is in place.
    """
    pending = distributed_tables() - distributed_already
    if not pending:
        return []
    tables = distributed_tables()
    steps = [
        Step(f"ALTER TABLE {_qn(table)} DROP CONSTRAINT {_qn(name)}", f"{table} → {target}, until both are sharded")
        for table, name, target, kind, columns in key_constraints()
        if kind == "f" and table in tables and target in tables and DISTRIBUTION_COLUMN in columns
    ]
    for model in _reference_models_in_order():
        table = model._meta.db_table
        if table not in distributed_already:
            steps.append(Step(f"SELECT create_reference_table('{table}')", f"{table} is shared", on_citus=True))
    anchor = "payments_order"
    for table in sorted(pending, key=lambda t: (t != anchor, t)):
        colocate = "'none'" if table == anchor else f"'{anchor}'"
        steps.append(
            Step(
                f"SELECT create_distributed_table('{table}', '{DISTRIBUTION_COLUMN}', colocate_with => {colocate})",
                f"{table} is merchant-owned",
                on_citus=True,
            )
        )
    steps.extend(step for _name, step in _merchant_foreign_keys())
    return steps


def _merchant_foreign_keys() -> list[tuple[str, Step]]:
    """Each link between distributed tables as a ``(merchant_id, …_id)`` foreign key, with its name."""
    keys = []
    for model in _models_placed(_D):
        for field in _relations(model):
            if not isinstance(field, _MerchantJoin):
                continue
            table, target = model._meta.db_table, field.related_model._meta.db_table
            name = f"{table}_{field.column}_merchant_fk"[:63]
            sql = (
                f"ALTER TABLE {_qn(table)} ADD CONSTRAINT {_qn(name)} FOREIGN KEY "
                f"({_qn(DISTRIBUTION_COLUMN)}, {_qn(field.column)}) REFERENCES {_qn(target)} "
                f"({_qn(DISTRIBUTION_COLUMN)}, {_qn('id')}) DEFERRABLE INITIALLY DEFERRED"
            )
            keys.append((name, Step(sql, f"{model._meta.label}.{field.name} within one merchant")))
    return keys
