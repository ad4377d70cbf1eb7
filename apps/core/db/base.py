"""PostgreSQL, with every transaction carrying the tenant scope of the code that runs it (``apps.core.rls``).

Settings are transaction-local, so they are applied at the first statement of each transaction (and again
after a change of scope or a rollback to a savepoint, which undoes them); a statement run in autocommit mode
gets a transaction of its own — except the owner's (management commands and migrations, whose statements
such as CREATE DATABASE may refuse one; Django runs migrations in transactions on PostgreSQL). The extra
statements go through the raw connection, so Django's query logging and ``assertNumQueries`` count only the
application's queries.
"""

from __future__ import annotations

from django.db.backends.postgresql import base
from psycopg import sql as sql_text

from apps.core import rls
from apps.core.distribution import PLACEMENTS, Placement

# The values are quoted as literals: several statements in one round trip take no parameters.
_BEGIN_AND_APPLY = sql_text.SQL("BEGIN; " + rls.APPLY_SQL.replace("%s", "{}"))


class DatabaseFeatures(base.DatabaseFeatures):
    def allows_group_by_selected_pks_on_model(self, model) -> bool:
        """Not for distributed tables: their key becomes ``(merchant_id, id)`` (``citus_distribute``), and
        ``id`` alone then no longer determines the row's other columns in a GROUP BY."""
        distributed = PLACEMENTS.get(model._meta.label) == Placement.DISTRIBUTED
        return super().allows_group_by_selected_pks_on_model(model) and not distributed


class DatabaseWrapper(base.DatabaseWrapper):
    features_class = DatabaseFeatures

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rls_applied: tuple | None = None
        self._rls_role: str | None = None
        self.execute_wrappers.append(self._in_tenant_scope)

    def init_connection_state(self):
        super().init_connection_state()
        self._rls_applied = None
        self._rls_role = self._switchable_role()

    def _switchable_role(self) -> str | None:
        """The application role, if it exists and this login may act as it (else the login's own rights)."""
        role = rls.app_role()
        if not role:
            return None
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s AND pg_has_role(current_user, oid, 'MEMBER')", [role]
            )
            return role if cursor.fetchone() else None

    def _in_tenant_scope(self, execute, sql, params, many, context):
        scope = rls.current()
        wanted = rls.settings_of(scope, self._rls_role)
        if self.get_autocommit():
            if scope.owner:  # the login's own rights; and CREATE DATABASE and the like refuse a transaction
                return execute(sql, params, many, context)
            # One round trip opens the statement's transaction and sets its scope; one more ends it.
            self._raw_execute(_BEGIN_AND_APPLY.format(*map(sql_text.Literal, wanted)))
            try:
                result = execute(sql, params, many, context)
            except BaseException:
                self._raw_execute("ROLLBACK")
                raise
            self._raw_execute("COMMIT")
            return result
        if self._rls_applied != wanted:
            self._raw_execute(rls.APPLY_SQL, wanted)
            self._rls_applied = wanted
        return execute(sql, params, many, context)

    def _raw_execute(self, statement, params=None) -> None:
        """A statement of the backend's own; a lost connection surfaces as Django's ``OperationalError``
        (which the API answers with 503), as it would for the application's statement."""
        with self.wrap_database_errors:
            self.connection.execute(statement, params)

    def _commit(self):
        self._rls_applied = None
        return super()._commit()

    def _rollback(self):
        self._rls_applied = None
        return super()._rollback()

    def _savepoint_rollback(self, sid):
        super()._savepoint_rollback(sid)  # first: the transaction may be aborted until then
        self._rls_applied = None  # the rollback undid settings made after the savepoint

    def _set_autocommit(self, autocommit):
        self._rls_applied = None
        return super()._set_autocommit(autocommit)
