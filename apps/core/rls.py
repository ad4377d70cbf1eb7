"""Row-level security on PostgreSQL: the tenancy layer below the ORM.

The tenant tables of ``PROTECTED_MODELS`` carry a policy that shows a row only when the transaction's settings
name its tenant (``app.isv_id``, ``app.merchant_id``, and for a user session ``app.wallet_user_id``) or an
explicit bypass (``app.bypass``). The
settings are always transaction-scoped (``set_config(…, true)``, i.e. ``SET LOCAL``), so nothing outlives its
transaction on a pooled or persistent connection (pgbouncer in transaction mode included). The database
backend (``apps.core.db``) applies the scope in force at the first statement of every transaction, and runs
each autocommit statement in a transaction of its own that sets it, switching to ``DATABASE_APP_ROLE`` (a
role without BYPASSRLS that does not own the tables) unless the scope is the owner's.

Scopes: a web request starts ``CLOSED`` (every protected row hidden) until its credential names a tenant;
operators, Celery tasks and ``.unscoped()`` queries (the ORM's own greppable escape hatch) run under a
``bypass`` that names its reason, visible in ``pg_stat_activity`` as ``app.bypass_reason``; management
commands and migrations run as the owner.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator

from django.conf import settings

#: The models whose rows PostgreSQL itself keeps to their tenant: every table a tenant's API or admin reads
#: (money, keys, onboarding, mini programs, user sessions, webhooks). Each policy follows the model's
#: ``tenant_fields``, so the database draws the same line as ``visible_to``: the ISV, then the merchant, then,
#: for a user session, the wallet user. Tables only operators and tasks read (audit, reconciliation, inbound
#: notifications, wallet evidence) are left to the layers above.
PROTECTED_MODELS = (
    "merchants.Merchant",
    "merchants.WalletCredential",
    "merchants.BusinessLicense",
    "merchants.Registration",
    "merchants.RegistrationEvent",
    "accounts.ApiKey",
    "miniprograms.MiniProgram",
    "miniprograms.MiniProgramFeature",
    "miniprograms.Product",
    "usersessions.WalletUser",
    "usersessions.UserSession",
    "payments.Order",
    "payments.Payment",
    "payments.PaymentEvent",
    "payments.Refund",
    "payments.PreAuthorization",
    "payments.PreAuthorizationRelease",
    "webhooks.WebhookEvent",
    "webhooks.WebhookDelivery",
    "webhooks.WebhookAttempt",
)


@dataclasses.dataclass(frozen=True, slots=True)
class DbScope:
    """What the next transaction may see. ``owner``: as the connecting role, everything (migrations,
    management commands); ``bypass``: as the application role, everything, for the reason given."""

    isv_id: int | None = None
    merchant_id: int | None = None
    wallet_user_id: int | None = None
    bypass: str = ""
    owner: bool = False


CLOSED = DbScope()
OWNER = DbScope(bypass="owner", owner=True)

_scope: contextvars.ContextVar[DbScope] = contextvars.ContextVar("db_scope", default=OWNER)


def current() -> DbScope:
    return _scope.get()


def enter(scope: DbScope) -> contextvars.Token:
    """Make ``scope`` the scope of what follows in this context (a request resets it when it ends)."""
    return _scope.set(scope)


def leave(token: contextvars.Token) -> None:
    _scope.reset(token)


@contextlib.contextmanager
def scoped(scope: DbScope) -> Iterator[None]:
    token = enter(scope)
    try:
        yield
    finally:
        leave(token)


def bypass(reason: str):
    """Every tenant's rows, as the application role, for ``reason`` (kept in ``app.bypass_reason``)."""
    return scoped(DbScope(bypass=reason))


def scope_for(principal) -> DbScope:
    """The database scope of a principal: operators bypass (named), tenants see their own rows."""
    if principal.is_operator:
        return DbScope(bypass=f"operator {principal.user_id or ''}".strip())
    if principal.isv_id is None or not principal.is_authenticated:
        return CLOSED
    return DbScope(
        isv_id=principal.isv_id,
        merchant_id=principal.merchant_id,
        wallet_user_id=principal.wallet_user_id if principal.is_user_session else None,
    )


#: One round trip: the role and the tenant settings, all local to the transaction.
APPLY_SQL = (
    "SELECT set_config('role', %s, true), set_config('app.isv_id', %s, true), "
    "set_config('app.merchant_id', %s, true), set_config('app.wallet_user_id', %s, true), "
    "set_config('app.bypass', %s, true), "
    "set_config('app.bypass_reason', %s, true)"
)


def _setting(value: int | None) -> str:
    return "" if value is None else str(value)


def settings_of(scope: DbScope, app_role: str | None) -> tuple[str, ...]:
    """The values ``APPLY_SQL`` sets for ``scope``; ``app_role`` is None where no role is switched."""
    role = "none" if scope.owner or not app_role else app_role
    return (
        role,
        _setting(scope.isv_id),
        _setting(scope.merchant_id),
        _setting(scope.wallet_user_id),
        "on" if scope.bypass else "off",
        scope.bypass[:200],
    )


def protected_tables() -> list[str]:
    from django.apps import apps

    return [apps.get_model(label)._meta.db_table for label in PROTECTED_MODELS]


def app_role() -> str:
    return settings.DATABASE_APP_ROLE


def _column_condition(model, path: str, value: str) -> str:
    """SQL for ``path`` (a ``tenant_fields`` lookup: a column, or one hop through a foreign key) = ``value``."""
    field_name, _, rest = path.partition("__")
    field = model._meta.get_field(field_name.removesuffix("_id") if not rest else field_name)
    if not rest:
        return f"{field.column} = {value}"
    target = field.related_model
    inner = _column_condition(target, rest, value)
    return f"{field.column} IN (SELECT id FROM {target._meta.db_table} WHERE {inner})"  # noqa: S608 - model metadata


def policy_sql(model) -> list[str]:
    """The statements that put ``model``'s table under its tenant policy (FORCE: its owner too)."""
    fields = model.tenant_fields
    table = model._meta.db_table

    def setting(name: str) -> str:
        return f"nullif(current_setting('app.{name}', true), '')::bigint"

    visible = [f"{_column_condition(model, fields.isv, setting('isv_id'))}"]
    for name, path in (("merchant_id", fields.merchant), ("wallet_user_id", fields.wallet_user)):
        if path is not None:
            visible.append(f"({setting(name)} IS NULL OR {_column_condition(model, path, setting(name))})")
    condition = f"current_setting('app.bypass', true) = 'on' OR ({' AND '.join(visible)})"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS tenant_rows ON {table}",
        f"CREATE POLICY tenant_rows ON {table} USING ({condition}) WITH CHECK ({condition})",
    ]


def unprotect_sql(model) -> list[str]:
    table = model._meta.db_table
    return [
        f"DROP POLICY IF EXISTS tenant_rows ON {table}",
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ]


def grant_app_role(connection) -> None:
    """Create the application role if the connecting role may, and give it the data (not the tables):
    run after every migration, so new tables are granted too."""
    role = app_role()
    if connection.vendor != "postgresql" or not role:
        return
    with scoped(OWNER), connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            cursor.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
            if not cursor.fetchone()[0]:
                return  # the operator creates it (deploy/README.md); until then nothing switches to it
            cursor.execute(f'CREATE ROLE "{role}" NOLOGIN NOBYPASSRLS')
        cursor.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        cursor.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
        cursor.execute(f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')


_task_tokens: dict[str, contextvars.Token] = {}


def connect_signals() -> None:
    """Celery tasks are the platform's cross-tenant batch work: each runs under a bypass naming it. After
    every migration the application role is granted the new tables."""
    from celery.signals import task_postrun, task_prerun
    from django.db.models.signals import post_migrate

    def task_started(task_id, task, **kwargs):
        _task_tokens[task_id] = enter(DbScope(bypass=f"task {task.name}"))

    def task_ended(task_id, **kwargs):
        token = _task_tokens.pop(task_id, None)
        if token is not None:
            leave(token)

    def migrated(using, **kwargs):
        from django.db import connections

        grant_app_role(connections[using])

    task_prerun.connect(task_started, weak=False, dispatch_uid="rls-task-started")
    task_postrun.connect(task_ended, weak=False, dispatch_uid="rls-task-ended")
    post_migrate.connect(migrated, weak=False, dispatch_uid="rls-grant-app-role")
