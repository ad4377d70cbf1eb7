"""Each of the six admin roles, signed in, against what the issue says it may do: one row per role.

The isolation walks (tests/test_isolation.py) prove what nobody sees of another tenant; this proves what each
role may do within its own.
"""

import pytest
from django.test import Client
from django.urls import reverse

from apps.core.tenancy import Role
from apps.payments.models import Order
from tests.factories import MembershipFactory, UserFactory

# role: (sees the audit log, may refund, may edit its merchant)
MATRIX = {
    "operator": (True, True, True),
    "isv_admin": (True, True, True),
    "isv_viewer": (False, False, False),
    "merchant_owner": (False, True, True),
    "merchant_staff_granted": (False, True, False),
    "merchant_staff": (False, False, False),
    "merchant_viewer": (False, False, False),
}


def _user(world, role_name: str):
    merchant = world.a.merchants[1].merchant  # onboarded, with the canary order
    if role_name == "operator":
        return world.operator
    at_isv = role_name.startswith("isv_")
    role = {
        "isv_admin": Role.ADMIN,
        "isv_viewer": Role.VIEWER,
        "merchant_owner": Role.OWNER,
        "merchant_staff_granted": Role.STAFF,
        "merchant_staff": Role.STAFF,
        "merchant_viewer": Role.VIEWER,
    }[role_name]
    return MembershipFactory(
        user=UserFactory(),
        isv=world.a.isv,
        merchant=None if at_isv else merchant,
        role=role,
        may_refund=role_name == "merchant_staff_granted",
    ).user


@pytest.mark.parametrize("role_name", list(MATRIX))
def test_each_role_sees_and_does_what_its_membership_allows(world, role_name):
    sees_audit, may_refund, may_edit = MATRIX[role_name]
    user = _user(world, role_name)
    client = Client()
    client.force_login(user)
    merchant = world.a.merchants[1].merchant
    order = Order.objects.unscoped().get(reference="canary-ref-a2")

    assert client.get("/admin/").status_code == 200
    assert client.get(reverse("admin:payments_order_changelist")).status_code == 200
    page = client.get(reverse("admin:payments_order_change", args=[order.pk])).content.decode()
    assert ("refund-link" in page) is may_refund
    refund = client.get(reverse("admin:payments_order_refund", args=[order.pk]))
    assert (refund.status_code != 403) is may_refund

    assert (client.get(reverse("admin:accounts_auditentry_changelist")).status_code == 200) is sees_audit

    renamed = client.post(
        reverse("admin:merchants_merchant_change", args=[merchant.pk]),
        {"name": "renamed by the matrix", "isv": merchant.isv_id},
    )
    merchant.refresh_from_db()
    assert (merchant.name == "renamed by the matrix") is may_edit, renamed.status_code
    assert not user.is_superuser or role_name == "operator"
    assert not user.user_permissions.exists()
