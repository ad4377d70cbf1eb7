"""What each role sees and may do in the admin (isolation across tenants is in tests/test_isolation.py)."""

import re

from django.test import Client
from django.urls import reverse

from apps.accounts.models import ApiKey
from apps.core.tenancy import Role
from apps.merchants.models import Merchant
from tests.conftest import STAFF_PASSWORD
from tests.factories import MembershipFactory, UserFactory


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_staff_sign_in_through_the_login_form(world):
    client = Client()
    response = client.post(
        reverse("admin:login"),
        {"username": "merchant-a1-owner", "password": STAFF_PASSWORD, "next": "/admin/"},
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_user_without_membership_cannot_use_the_admin(db):
    client = _login(UserFactory(is_staff=True))
    assert client.get("/admin/").status_code == 302  # back to the login page


def test_merchant_staff_see_only_their_merchant_and_keys(world):
    client = _login(world.a.merchants[0].staff)
    merchants = client.get(reverse("admin:merchants_merchant_changelist")).content.decode()
    assert "canary-merchant-a1" in merchants
    assert "canary-merchant-a2" not in merchants
    keys = client.get(reverse("admin:accounts_apikey_changelist")).content.decode()
    assert "canary-key-a1" in keys
    assert "canary-isvkey-a" not in keys
    assert client.get(reverse("admin:merchants_merchant_add")).status_code == 403
    assert client.get(reverse("admin:merchants_isv_changelist")).status_code == 403


def test_merchant_staff_create_a_key_for_their_merchant_and_see_it_once(world):
    tenant = world.a.merchants[0]
    client = _login(tenant.staff)
    response = client.post(reverse("admin:accounts_apikey_add"), {"name": "from the admin"})
    assert response.status_code == 200
    secret = re.search(r'id="api-key-secret"[^>]*>(msk_\w+)<', response.content.decode()).group(1)
    key = ApiKey.objects.unscoped().get(name="from the admin")
    assert (key.isv_id, key.merchant_id, key.created_by_id) == (
        tenant.merchant.isv_id,
        tenant.merchant.pk,
        tenant.staff.pk,
    )
    assert secret not in client.get(reverse("admin:accounts_apikey_changelist")).content.decode()
    assert secret not in client.get(reverse("admin:accounts_apikey_change", args=[key.pk])).content.decode()


def test_isv_admin_onboards_a_merchant_only_under_their_isv(world):
    client = _login(world.a.staff)
    response = client.post(reverse("admin:merchants_merchant_add"), {"isv": world.b.isv.pk, "name": "Sneaky"})
    assert response.status_code == 200  # the form refuses the other ISV as an invalid choice
    assert not Merchant.objects.unscoped().filter(name="Sneaky").exists()
    client.post(reverse("admin:merchants_merchant_add"), {"isv": world.a.isv.pk, "name": "New Bakery"})
    assert Merchant.objects.unscoped().get(name="New Bakery").isv == world.a.isv


def test_a_merchant_never_moves_to_another_isv(world):
    merchant = world.a.merchants[0].merchant
    client = _login(world.operator)
    client.post(reverse("admin:merchants_merchant_change", args=[merchant.pk]), {"isv": world.b.isv.pk, "name": "x"})
    merchant.refresh_from_db()
    assert merchant.isv == world.a.isv


def test_viewers_read_but_cannot_change(world):
    viewer = MembershipFactory(
        user=UserFactory(), isv=world.a.isv, merchant=world.a.merchants[0].merchant, role=Role.VIEWER
    ).user
    client = _login(viewer)
    merchant = world.a.merchants[0].merchant
    url = reverse("admin:merchants_merchant_change", args=[merchant.pk])
    assert client.get(url).status_code == 200
    assert client.post(url, {"name": "renamed"}).status_code == 403
    merchant.refresh_from_db()
    assert merchant.name == "canary-merchant-a1"


def test_staff_revoke_keys_with_the_admin_action(world):
    client = _login(world.a.merchants[0].staff)
    key = ApiKey.objects.unscoped().get(name="canary-key-a1")
    client.post(
        reverse("admin:accounts_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [key.pk]},
    )
    key.refresh_from_db()
    assert key.status == "revoked"


def test_operators_see_every_tenant(world):
    body = _login(world.operator).get(reverse("admin:merchants_merchant_changelist")).content.decode()
    assert all(f"canary-merchant-{label}" in body for label in ("a1", "a2", "b1", "b2"))


def test_a_nul_byte_in_an_admin_query_is_a_400(world):
    client = _login(world.a.staff)
    assert client.get(reverse("admin:accounts_membership_changelist") + "?role=%00").status_code == 400


def test_isv_staff_cannot_rename_their_isv(world):
    client = _login(world.a.staff)
    client.post(reverse("admin:merchants_isv_change", args=[world.a.isv.pk]), {"name": "canary-isv-b"})
    world.a.isv.refresh_from_db()
    assert world.a.isv.name == "canary-isv-a"
    page = client.get(reverse("admin:merchants_isv_change", args=[world.a.isv.pk])).content.decode()
    assert 'name="name"' not in page
