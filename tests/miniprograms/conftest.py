import datetime

import pytest
from django.utils import timezone

from apps.merchants.models import BusinessLicense, Merchant, Registration, RegistrationStatus
from apps.miniprograms.models import MiniProgram, Product
from apps.superapps.models import SuperApp, TradePayMode


def rows(model) -> list[dict]:
    """Every row of ``model`` as it is in the database: what a refused write must leave untouched."""
    return list(model.objects.unscoped().order_by("pk").values())


@pytest.fixture
def mini_program(world) -> MiniProgram:
    """Merchant a1's mini program from the world fixture."""
    return MiniProgram.objects.unscoped().select_related("super_app", "merchant").get(app_id="canary-app-a1")


@pytest.fixture
def product(world) -> Product:
    return Product.objects.unscoped().get(sku="canary-sku-a1")


@pytest.fixture
def order_str_only(db) -> SuperApp:
    """A second super app that supports only orderStr."""
    return SuperApp.objects.create(
        code="order-str-wallet",
        name="Order string wallet",
        gateway_base_url="https://other.invalid/api",
        wallet_public_key_pem="unused",
        trade_pay_modes=[TradePayMode.ORDER_STR],
    )


def license_verified(
    merchant: Merchant, super_app: SuperApp, *, status=RegistrationStatus.VERIFIED, expires_in_days: int = 365
) -> None:
    """Write the license rows the gate reads directly (the registration workflow is tested in merchants)."""
    today = timezone.localdate()
    BusinessLicense.objects.unscoped().update_or_create(
        merchant=merchant,
        defaults={
            "isv_id": merchant.isv_id,
            "legal_name": "Gate Test Ltd",
            "registration_no": "GATE-1",
            "registration_type": "ENTERPRISE_REGISTRATION_NO",
            "business_type": "ENTERPRISE",
            "address_country": "PH",
            "address_city": "Manila",
            "address_line": "1 Rizal Avenue",
            "effective_date": today - datetime.timedelta(days=30),
            "expiry_date": today + datetime.timedelta(days=expires_in_days),
            "document": "licenses/gate-test.pdf",
            "contact_name": "Ana Reyes",
            "contact_email": "ana@example.com",
        },
    )
    Registration.objects.unscoped().update_or_create(
        merchant=merchant, super_app=super_app, defaults={"isv_id": merchant.isv_id, "status": status}
    )


@pytest.fixture(autouse=True)
def _production_webhook_policy(settings):
    """The policy as production applies it; the embedded default allows private hosts for local demos."""
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
