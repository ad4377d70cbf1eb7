"""Row-level security on PostgreSQL (apps/core/rls.py): the database itself keeps each tenant's money and
key rows to it, whatever SQL reaches it — raw SQL and the ORM's base managers included."""

import pytest
from django.db import DatabaseError, connection, transaction
from django.http import HttpResponse
from django.test import RequestFactory

from apps.core import rls
from apps.core.middleware import TenantScopeMiddleware
from apps.core.tenancy import Principal
from apps.payments.models import Order

pytestmark = pytest.mark.postgres


def _orders_seen() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT isv_id, merchant_id FROM payments_order")
        return set(cursor.fetchall())


def _two_tenants() -> tuple[tuple[int, int], tuple[int, int]]:
    """(isv, merchant) of two merchants of two ISVs that have orders in the world."""
    first = min(_orders_seen())
    return first, min(t for t in _orders_seen() if t[0] != first[0])


def test_raw_sql_sees_only_the_scope_s_tenant(world):
    everyone = _orders_seen()  # the test itself runs as the owner
    (isv, merchant), _ = _two_tenants()
    with rls.scoped(rls.scope_for(Principal.system(isv_id=isv, merchant_id=merchant))):
        assert _orders_seen() == {(isv, merchant)}
    with rls.scoped(rls.scope_for(Principal.system(isv_id=isv))):
        assert _orders_seen() == {t for t in everyone if t[0] == isv}
    with rls.scoped(rls.CLOSED):
        assert _orders_seen() == set()
        assert Order.objects.unscoped().exists()  # the ORM's named escape hatch is the database's too
    with rls.bypass("test"):
        assert _orders_seen() == everyone
    assert len(everyone) >= 2


def test_the_base_manager_cannot_reach_another_tenant_either(world):
    (isv, merchant), (_, other_merchant) = _two_tenants()
    foreign = Order.objects.unscoped().filter(merchant_id=other_merchant).first()
    with rls.scoped(rls.DbScope(isv_id=isv, merchant_id=merchant)):
        assert not Order._base_manager.filter(pk=foreign.pk).exists()
        assert Order._base_manager.filter(pk=foreign.pk).update(description="stolen") == 0
    foreign.refresh_from_db()
    assert foreign.description != "stolen"


def test_a_row_cannot_be_written_into_another_tenant(world):
    (isv, merchant), (other_isv, other_merchant) = _two_tenants()
    mine = Order.objects.unscoped().filter(merchant_id=merchant).first()
    refused = pytest.raises(DatabaseError, match="row-level security")
    with rls.scoped(rls.DbScope(isv_id=isv, merchant_id=merchant)), refused, transaction.atomic():
        Order._base_manager.filter(pk=mine.pk).update(merchant_id=other_merchant, isv_id=other_isv)


def test_settings_end_with_their_transaction_on_a_kept_connection(world, transactional_db):
    (isv, merchant), _ = _two_tenants()
    with rls.scoped(rls.DbScope(isv_id=isv, merchant_id=merchant)):
        with transaction.atomic():
            assert _orders_seen() == {(isv, merchant)}
        assert _orders_seen() == {(isv, merchant)}  # autocommit: a transaction of its own, same scope
    with rls.scoped(rls.CLOSED):
        assert _orders_seen() == set()  # the same connection, nothing left over
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('app.isv_id', true), current_user")
            isv_setting, role = cursor.fetchone()
    assert (isv_setting, role) == ("", rls.app_role())


def test_a_rollback_to_a_savepoint_does_not_drop_the_scope(world):
    (isv, merchant), _ = _two_tenants()
    with rls.scoped(rls.DbScope(isv_id=isv, merchant_id=merchant)):
        assert _orders_seen() == {(isv, merchant)}
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO payments_order (id) VALUES (NULL)")
        assert _orders_seen() == {(isv, merchant)}


def test_the_application_role_neither_owns_the_tables_nor_bypasses(world):
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = %s", [rls.app_role()])
        assert cursor.fetchone() == (False, False)
        cursor.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner) FROM pg_class"
            " WHERE relname = ANY(%s)",
            [rls.protected_tables()],
        )
        rows = cursor.fetchall()
    assert {row[0] for row in rows} == set(rls.protected_tables())
    assert all(row[1] and row[2] and row[3] != rls.app_role() for row in rows)


def test_a_request_without_a_credential_sees_no_protected_row(world):
    """The web request's own scope: closed until a credential names a tenant."""
    seen = []

    def view(request):
        seen.append(_orders_seen())
        return HttpResponse("ok")

    TenantScopeMiddleware(view)(RequestFactory().get("/"))
    assert seen == [set()]
    assert _orders_seen()  # and after the request, the test's own scope again
