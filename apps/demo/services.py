"""The demo tenant set that ``make run`` starts with. Idempotent: objects are found by name or created."""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import secrets
import tempfile

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts import services as account_services
from apps.accounts.models import ApiKey, User
from apps.core.money import Money
from apps.core.tenancy import Principal, Role
from apps.merchants import selectors as merchant_selectors
from apps.merchants import services as merchant_services
from apps.merchants.models import Isv, Merchant, Registration, RegistrationStatus, WalletCredential
from apps.miniprograms import services as mini_program_services
from apps.miniprograms.models import Feature, MiniProgram, MiniProgramFeature, MiniProgramStatus, Product
from apps.superapps.client import messages
from apps.superapps.models import SuperApp, TradePayMode
from apps.usersessions.services import session_open

DEMO_ISV = "Demo ISV"
DEMO_MERCHANTS = (("Demo Coffee", "coffee-staff"), ("Demo Rentals", "rentals-staff"))
# Per merchant: its mini program (appId, my.tradePay mode, extra features) and its catalogue (sku, name, price).
DEMO_CATALOGUE = {
    "Demo Coffee": (
        ("demo-coffee-app", TradePayMode.PAYMENT_URL, ()),
        (
            ("flat-white", "Flat white", 450),
            ("croissant", "Butter croissant", 350),
            ("beans-250g", "House beans 250 g", 1800),
        ),
    ),
    "Demo Rentals": (
        ("demo-rentals-app", TradePayMode.ORDER_STR, (Feature.PRE_AUTHORIZATION,)),
        (("bike-hour", "City bike, per hour", 800), ("scooter-day", "E-scooter, per day", 2500)),
    ),
}
DEMO_CURRENCY = "USD"
SANDBOX_CODE = "sandbox"
DEMO_KEY_NAME = "demo key"
DEMO_WALLET_USER = "alice"  # a sandbox test user with a balance in every currency


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
class DemoMerchant(DemoTenant):
    mini_programs: list[dict] = dataclasses.field(default_factory=list)
    products: list[dict] = dataclasses.field(default_factory=list)
    wallet_credentials: list[dict] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class DemoSet:
    operator: Login
    isv: DemoTenant
    merchants: list[DemoMerchant]


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


def _sandbox_super_app() -> SuperApp:
    """The built-in sandbox wallet as a super app. Its key is read through the sandbox's console command:
    the platform never imports sandbox code, as it could not import a real wallet's."""
    wallet_key = io.StringIO()
    call_command("sandbox_public_key", stdout=wallet_key)
    super_app, _ = SuperApp.objects.update_or_create(
        code=SANDBOX_CODE,
        defaults={
            "name": "Sandbox wallet",
            "gateway_base_url": f"{settings.PUBLIC_BASE_URL}/sandbox",
            "api_version": "v2",
            "wallet_public_key_pem": wallet_key.getvalue().strip(),
            "trade_pay_modes": [TradePayMode.PAYMENT_URL, TradePayMode.ORDER_STR],
            "classic_gateway_url": f"{settings.PUBLIC_BASE_URL}/sandbox/gateway.do",
        },
    )
    return super_app


def _sandbox_credential(*, merchant: Merchant, super_app: SuperApp) -> WalletCredential:
    """The merchant's credentials at the sandbox, registered there as a merchant would in a wallet's console."""
    credential = merchant.wallet_credentials.filter(super_app=super_app).first()
    if credential is None:
        credential = merchant_services.wallet_credential_create(
            isv=merchant.isv,
            merchant=merchant,
            super_app=super_app,
            client_id=slugify(merchant.name),
            classic_app_id=f"classic-{slugify(merchant.name)}",
        )
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as public_key:
        public_key.write(credential.public_key_pem)
        public_key.flush()
        call_command(
            "sandbox_client_register",
            "--client-id",
            credential.client_id,
            "--public-key-file",
            public_key.name,
            "--name",
            merchant.name,
            "--classic-app-id",
            credential.classic_app_id,
            stdout=io.StringIO(),
        )
    return credential


# A one-page PDF standing in for a scanned business license.
_DEMO_LICENSE_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj "
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 144]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _verified_license(*, merchant: Merchant, super_app: SuperApp) -> None:
    """A business license on file and verified at the sandbox, recorded through the registration state
    machine (the demo's verification happened "out of band", and the events say so)."""
    registration = merchant.registrations.filter(super_app=super_app).first()
    if registration is not None and registration.status == RegistrationStatus.VERIFIED:
        return
    today = timezone.localdate()
    business_license = merchant_services.business_license_save(
        merchant=merchant,
        fields={
            "legal_name": f"{merchant.name} Ltd",
            "registration_no": f"DEMO-{merchant.pk:06d}",
            "registration_type": "ENTERPRISE_REGISTRATION_NO",
            "business_type": "ENTERPRISE",
            "address_country": "PH",
            "address_city": "Manila",
            "address_line": "1 Rizal Avenue",
            "effective_date": today - datetime.timedelta(days=365),
            "expiry_date": today + datetime.timedelta(days=3 * 365),
            "contact_name": "Demo Owner",
            "contact_email": "owner@demo.invalid",
        },
        document=ContentFile(_DEMO_LICENSE_PDF, name="license.pdf"),
    )
    registration, _ = Registration.objects.unscoped().get_or_create(
        merchant=merchant, super_app=super_app, defaults={"isv_id": merchant.isv_id}
    )
    for status in (RegistrationStatus.SUBMITTED, RegistrationStatus.VERIFIED):
        registration = merchant_services.registration_transition(
            registration=registration,
            to=status,
            source="demo",
            reason="demo data: verified without a wallet call",
            **({"license_snapshot": business_license.snapshot()} if status == RegistrationStatus.SUBMITTED else {}),
        )


def _mini_program_and_catalogue(*, merchant: Merchant, super_app: SuperApp) -> tuple[list[dict], list[dict]]:
    (app_id, mode, features), products = DEMO_CATALOGUE[merchant.name]
    mini_program = MiniProgram.objects.visible_to(_owner(merchant)).filter(super_app=super_app, app_id=app_id).first()
    if mini_program is None:
        mini_program = mini_program_services.mini_program_create(
            merchant=merchant,
            super_app=super_app,
            app_id=app_id,
            name=f"{merchant.name} mini program",
            trade_pay_mode=mode,
            default_currency=DEMO_CURRENCY,
        ).mini_program
    mini_program = mini_program_services.mini_program_update(
        mini_program=mini_program,
        status=MiniProgramStatus.PUBLISHED,
        # The demo merchant's server (apps/demo/views.py): its webhook log in the admin fills as orders move.
        webhook_url=f"{settings.PUBLIC_BASE_URL}{reverse('demo:merchant-webhook', args=[app_id])}",
    )
    for feature in features:
        mini_program_services.feature_set(mini_program=mini_program, feature=feature, enabled=True)
    enabled = list(
        MiniProgramFeature.objects.visible_to(_owner(merchant))
        .filter(mini_program=mini_program, enabled=True)
        .order_by("feature")
        .values_list("feature", flat=True)
    )
    catalogue = []
    for sku, name, price in products:
        if not Product.objects.visible_to(_owner(merchant)).filter(sku=sku).exists():
            mini_program_services.product_create(
                merchant=merchant, sku=sku, name=name, price=Money(price, DEMO_CURRENCY)
            )
        catalogue.append({"sku": sku, "price": price, "currency": DEMO_CURRENCY})
    described = {
        "app_id": app_id,
        "mode": mode.value,
        "features": enabled,
        "currency": DEMO_CURRENCY,
        "session": _demo_session(mini_program),
    }
    return [described], catalogue


def _demo_session(mini_program: MiniProgram) -> dict:
    """A session for the demo wallet user, as ``POST /api/v1/sessions`` would open. The grant comes from the
    sandbox's console (the server may not be running while seeding), then goes through the same service."""
    credential = merchant_selectors.wallet_credential_for(
        merchant=mini_program.merchant, super_app=mini_program.super_app
    )
    answer = io.StringIO()
    call_command(
        "sandbox_grant",
        "--client-id",
        credential.client_id,
        "--app-id",
        mini_program.app_id,
        "--user",
        DEMO_WALLET_USER,
        stdout=answer,
    )
    opened = session_open(mini_program=mini_program, grant=messages.AccessToken.parse(json.loads(answer.getvalue())))
    return {
        "token": opened.token,
        "user_id": opened.session.wallet_user.customer_id,
        "expires_at": opened.session.expires_at.isoformat(),
    }


def _owner(merchant: Merchant) -> Principal:
    return Principal.system(isv_id=merchant.isv_id, merchant_id=merchant.pk)


@transaction.atomic
def demo_seed() -> DemoSet:
    operator = _login("operator", operator=True)
    super_app = _sandbox_super_app()
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
        credential = _sandbox_credential(merchant=merchant, super_app=super_app)
        _verified_license(merchant=merchant, super_app=super_app)
        mini_programs, products = _mini_program_and_catalogue(merchant=merchant, super_app=super_app)
        merchants.append(
            DemoMerchant(
                id=merchant.public_id,
                name=merchant.name,
                api_key=_fresh_key(isv=isv, merchant=merchant),
                staff=_login(staff, isv=isv, merchant=merchant, role=Role.OWNER),
                mini_programs=mini_programs,
                products=products,
                wallet_credentials=[
                    {
                        "super_app": super_app.code,
                        "client_id": credential.client_id,
                        "key_version": credential.key_version,
                        "public_key_pem": credential.public_key_pem,
                    }
                ],
            )
        )
    return DemoSet(operator=operator, isv=isv_tenant, merchants=merchants)
