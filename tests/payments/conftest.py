"""A merchant ready to take payments at the sandbox wallet, over real HTTP."""

import pytest

from apps.merchants.models import Registration, RegistrationStatus
from apps.merchants.services import business_license_save, registration_transition, wallet_credential_create
from apps.miniprograms.models import MiniProgramStatus
from apps.miniprograms.services import mini_program_create, mini_program_update
from apps.superapps.models import TradePayMode
from tests.merchants.test_registrations import license_fields, upload
from tests.superapps.conftest import make_wallet


@pytest.fixture
def wallet(live_server, settings, transactional_db):
    wallet = make_wallet(live_server, settings, code="sandbox", version="v2")
    wallet.super_app.trade_pay_modes = [TradePayMode.PAYMENT_URL, TradePayMode.ORDER_STR]
    wallet.super_app.save(update_fields=["trade_pay_modes"])
    return wallet


def ready_mini_program(
    merchant, wallet, *, verified: bool = True, app_id: str = "shop-app", trade_pay_mode=TradePayMode.PAYMENT_URL
):
    credential = wallet_credential_create(
        isv=merchant.isv,
        merchant=merchant,
        super_app=wallet.super_app,
        client_id=f"client-{app_id}",
        classic_app_id=f"classic-{app_id}",
    )
    wallet.register(credential)
    if verified:
        business_license = business_license_save(merchant=merchant, fields=license_fields(), document=upload())
        registration = Registration.objects.unscoped().create(
            isv_id=merchant.isv_id, merchant=merchant, super_app=wallet.super_app
        )
        for status in (RegistrationStatus.SUBMITTED, RegistrationStatus.VERIFIED):
            extra = {"license_snapshot": business_license.snapshot()} if status == RegistrationStatus.SUBMITTED else {}
            registration = registration_transition(registration=registration, to=status, source="test", **extra)
    mini_program = mini_program_create(
        merchant=merchant,
        super_app=wallet.super_app,
        app_id=app_id,
        name="Shop",
        trade_pay_mode=trade_pay_mode,
        default_currency="USD",
    ).mini_program
    return mini_program_update(mini_program=mini_program, status=MiniProgramStatus.PUBLISHED), credential


@pytest.fixture
def shop(world, wallet):
    mini_program, _ = ready_mini_program(world.a.merchants[0].merchant, wallet)
    return mini_program
