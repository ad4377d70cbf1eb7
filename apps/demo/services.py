"""The demo tenant set that ``make run`` starts with. Idempotent: objects are found by name or created."""

from __future__ import annotations

import dataclasses
import secrets

from django.db import transaction

from apps.accounts import services as account_services
from apps.accounts.models import ApiKey, User
from apps.core.tenancy import Role
from apps.merchants import services as merchant_services
from apps.merchants.models import Isv, Merchant

DEMO_ISV = "Demo ISV"
DEMO_MERCHANTS = (("Demo Coffee", "coffee-staff"), ("Demo Rentals", "rentals-staff"))
DEMO_KEY_NAME = "demo key"


@dataclasses.dataclass
class Login:
    username: str
    password: str


@dataclasses.dataclass
class DemoTenant:
    id: str
    name: str
    api_key: str
    staff: Login


@dataclasses.dataclass
class DemoSet:
    operator: Login
    isv: DemoTenant
    merchants: list[DemoTenant]


def _login(
    username: str,
    *,
    operator: bool = False,
    isv: Isv | None = None,
    merchant: Merchant | None = None,
    role: Role = Role.OWNER,
) -> Login:
    """The user ``username`` with a new random password (demo passwords are never fixed in code)."""
    password = secrets.token_urlsafe(12)
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User.objects.create_user(username=username, password=password)
    else:
        user.set_password(password)
        user.save(update_fields=["password"])
    if operator:
        User.objects.filter(pk=user.pk).update(is_superuser=True, is_staff=True)
    else:
        account_services.membership_set(user=user, isv=isv, merchant=merchant, role=role)
    return Login(username=username, password=password)


def _fresh_key(*, isv: Isv, merchant: Merchant | None) -> str:
    """Revoke the previous demo key of this owner and issue a new one."""
    for old in ApiKey.objects.unscoped().filter(isv=isv, merchant=merchant, name=DEMO_KEY_NAME, revoked_at=None):
        account_services.api_key_revoke(api_key=old)
    return account_services.api_key_create(isv=isv, merchant=merchant, name=DEMO_KEY_NAME).secret


@transaction.atomic
def demo_seed() -> DemoSet:
    operator = _login("operator", operator=True)
    isv = Isv.objects.unscoped().filter(name=DEMO_ISV).first() or merchant_services.isv_create(name=DEMO_ISV)
    isv_tenant = DemoTenant(
        id=isv.public_id,
        name=isv.name,
        api_key=_fresh_key(isv=isv, merchant=None),
        staff=_login("isv-admin", isv=isv, role=Role.ADMIN),
    )
    merchants = []
    for name, staff in DEMO_MERCHANTS:
        merchant = isv.merchants.filter(name=name).first() or merchant_services.merchant_create(isv=isv, name=name)
        merchants.append(
            DemoTenant(
                id=merchant.public_id,
                name=merchant.name,
                api_key=_fresh_key(isv=isv, merchant=merchant),
                staff=_login(staff, isv=isv, merchant=merchant, role=Role.OWNER),
            )
        )
    return DemoSet(operator=operator, isv=isv_tenant, merchants=merchants)
