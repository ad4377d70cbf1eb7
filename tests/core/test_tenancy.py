import asyncio

import pytest

from apps.accounts.models import ApiKey, Membership
from apps.core.api.views import TenantApiView
from apps.core.tenancy import Principal, PrincipalKind, Role, TenantScopeError, bypass
from apps.merchants.models import Isv, Merchant


def _merchant_principal(tenant) -> Principal:
    return Principal(kind=PrincipalKind.MERCHANT_KEY, isv_id=tenant.merchant.isv_id, merchant_id=tenant.merchant.pk)


@pytest.mark.parametrize(
    "query",
    [
        lambda: list(Merchant.objects.all()),
        lambda: Merchant.objects.filter(name="x").first(),
        lambda: Merchant.objects.get(pk=1),
        lambda: Merchant.objects.count(),
        lambda: Merchant.objects.exists(),
        lambda: Merchant.objects.values_list("pk", flat=True)[0],
        lambda: Merchant.objects.update(name="hijacked"),
        lambda: Merchant.objects.filter(name="x").delete(),
        lambda: list(ApiKey.objects.iterator()),
        lambda: Membership.objects.in_bulk([1]),
        lambda: list(Merchant.objects.raw("SELECT * FROM merchants_merchant")),
        lambda: list(Merchant.objects.visible_to(Principal.operator()).union(Merchant.objects.all())),
        lambda: list(Merchant.objects.visible_to(Principal.operator()).filter(pk__in=ApiKey.objects.values("pk"))),
        lambda: ApiKey.objects.bulk_create(
            [ApiKey(isv_id=1, name="x", prefix="p", secret_hash="h")],
            update_conflicts=True,
            unique_fields=["prefix"],
            update_fields=["name"],
        ),
    ],
)
def test_a_query_without_tenant_scope_raises(world, query):
    with pytest.raises(TenantScopeError, match="without a tenant scope"):
        query()


def test_async_iteration_without_scope_raises(world):
    async def drain():
        return [merchant async for merchant in Merchant.objects.all()]

    with pytest.raises(TenantScopeError):
        asyncio.run(drain())


def test_scoped_subqueries_and_unions_are_fine(world):
    principal = _merchant_principal(world.a.merchants[0])
    keys = ApiKey.objects.visible_to(principal).values("merchant_id")
    assert list(Merchant.objects.visible_to(principal).filter(pk__in=keys)) == [world.a.merchants[0].merchant]
    own = Merchant.objects.visible_to(principal)
    assert own.union(own).count() == 1


def test_the_scope_error_changed_nothing(world):
    names = sorted(Merchant.objects.unscoped().values_list("name", flat=True))
    with pytest.raises(TenantScopeError):
        Merchant.objects.update(name="hijacked")
    assert sorted(Merchant.objects.unscoped().values_list("name", flat=True)) == names


def test_operator_sees_every_tenant(world):
    assert Merchant.objects.visible_to(Principal.operator()).count() == 4


def test_isv_principal_sees_only_its_merchants(world):
    principal = Principal(kind=PrincipalKind.ISV_STAFF, isv_id=world.a.isv.pk, role=Role.VIEWER)
    visible = set(Merchant.objects.visible_to(principal).values_list("name", flat=True))
    assert visible == {"canary-merchant-a1", "canary-merchant-a2"}
    assert list(Isv.objects.visible_to(principal)) == [world.a.isv]


def test_merchant_principal_sees_only_its_own_rows(world):
    principal = _merchant_principal(world.a.merchants[0])
    assert list(Merchant.objects.visible_to(principal)) == [world.a.merchants[0].merchant]
    keys = ApiKey.objects.visible_to(principal)
    assert {key.name for key in keys} == {"canary-key-a1"}
    # ISVs are nobody's merchant row: a merchant principal sees none.
    assert not Isv.objects.visible_to(principal).exists()


def test_anonymous_and_unattached_principals_see_nothing(world):
    assert not Merchant.objects.visible_to(Principal.anonymous()).exists()
    assert not Merchant.objects.visible_to(Principal(kind=PrincipalKind.ISV_STAFF)).exists()


def test_a_merchant_principal_of_another_isv_sees_nothing_even_with_a_forged_merchant_id(world):
    forged = Principal(
        kind=PrincipalKind.MERCHANT_KEY, isv_id=world.b.isv.pk, merchant_id=world.a.merchants[0].merchant.pk
    )
    assert not Merchant.objects.visible_to(forged).exists()


def test_related_managers_from_a_fetched_instance_are_scoped_by_their_parent(world):
    merchant = Merchant.objects.visible_to(Principal.operator()).get(name="canary-merchant-a1")
    assert [key.name for key in merchant.api_keys.all()] == ["canary-key-a1"]


def test_bypass_is_explicit_and_ends_with_its_block(world):
    with bypass("test"):
        assert Merchant.objects.count() == 4
    with pytest.raises(TenantScopeError):
        Merchant.objects.count()


def test_api_views_cannot_replace_the_tenant_machinery():
    with pytest.raises(TypeError, match="may not override"):

        class Sneaky(TenantApiView):
            authentication_classes = []
