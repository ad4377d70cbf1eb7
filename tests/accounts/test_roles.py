"""Roles come from the membership: who may edit and who may refund, never from Django permissions."""

import pytest

from apps.accounts.selectors import principal_for_user
from apps.accounts.services import membership_set
from apps.core.errors import ApplicationError
from apps.core.tenancy import Role
from tests.factories import UserFactory


@pytest.mark.parametrize(
    ("at_merchant", "role", "may_refund", "can_edit", "can_refund"),
    [
        (False, Role.ADMIN, False, True, True),  # ISV admin
        (False, Role.VIEWER, False, False, False),  # ISV viewer
        (True, Role.OWNER, False, True, True),  # merchant owner
        (True, Role.STAFF, True, False, True),  # merchant staff granted refunds
        (True, Role.STAFF, False, False, False),  # merchant staff without the grant
        (True, Role.VIEWER, False, False, False),  # merchant viewer
    ],
)
def test_each_role_may_what_its_membership_says(world, at_merchant, role, may_refund, can_edit, can_refund):
    user = UserFactory()
    merchant = world.a.merchants[0].merchant if at_merchant else None
    membership_set(user=user, isv=world.a.isv, merchant=merchant, role=role, may_refund=may_refund)

    principal = principal_for_user(user)

    assert (principal.can_edit, principal.can_refund) == (can_edit, can_refund)
    assert principal.merchant_id == (merchant.pk if merchant else None)
    user.refresh_from_db()
    assert user.is_staff
    assert not user.is_superuser
    assert not user.user_permissions.exists()
    assert not user.groups.exists()


def test_operators_refund_without_a_membership(world):
    assert principal_for_user(world.operator).can_refund


@pytest.mark.parametrize(
    ("at_merchant", "role", "may_refund", "code"),
    [
        (False, Role.STAFF, False, "validation.staff_at_isv"),
        (True, Role.OWNER, True, "validation.refund_grant_not_staff"),
        (False, Role.VIEWER, True, "validation.refund_grant_not_staff"),
    ],
)
def test_a_role_that_does_not_fit_its_place_is_refused(world, at_merchant, role, may_refund, code):
    user = UserFactory(is_staff=False)
    merchant = world.a.merchants[0].merchant if at_merchant else None
    with pytest.raises(ApplicationError) as refused:
        membership_set(user=user, isv=world.a.isv, merchant=merchant, role=role, may_refund=may_refund)
    assert refused.value.code == code
    user.refresh_from_db()
    assert not user.is_staff
    assert not hasattr(user, "membership")
