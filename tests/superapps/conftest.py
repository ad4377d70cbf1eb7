"""A super app backed by the sandbox wallet, served over real HTTP by pytest-django's live server."""

from __future__ import annotations

import dataclasses
import io
import json
import tempfile

import pytest
from django.core.management import call_command

from apps.merchants.selectors import wallet_client_for
from apps.merchants.services import wallet_credential_create
from apps.superapps.client.client import WalletClient
from apps.superapps.models import SuperApp


@dataclasses.dataclass
class Wallet:
    super_app: SuperApp
    base_url: str

    def register(self, credential, *, faults: dict | None = None) -> None:
        classic = ["--classic-app-id", credential.classic_app_id] if credential.classic_app_id else []
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
                "Test Merchant",
                "--partner-id",
                credential.partner_id,
                *classic,
                "--faults",
                json.dumps(faults or {}),
                stdout=io.StringIO(),
            )


def make_wallet(live_server, settings, *, code: str, version: str) -> Wallet:
    settings.PUBLIC_BASE_URL = live_server.url
    key = io.StringIO()
    call_command("sandbox_public_key", stdout=key)
    super_app = SuperApp.objects.create(
        code=code,
        name=f"Sandbox {version}",
        gateway_base_url=f"{live_server.url}/sandbox",
        classic_gateway_url=f"{live_server.url}/sandbox/gateway.do",
        api_version=version,
        wallet_public_key_pem=key.getvalue().strip(),
    )
    return Wallet(super_app=super_app, base_url=live_server.url)


@pytest.fixture(params=["v2", "v1"])
def wallet(request, live_server, settings, transactional_db) -> Wallet:
    return make_wallet(live_server, settings, code=f"sandbox-{request.param}", version=request.param)


@pytest.fixture
def client_for(wallet, world):
    """A wallet client of merchant A1 at the wallet, with the given sandbox faults switched on (and a classic
    gateway app id, if given, the first time)."""

    def build(*, faults: dict | None = None, read_timeout: float = 10.0, classic_app_id: str = "") -> WalletClient:
        merchant = world.a.merchants[0].merchant
        credential = merchant.wallet_credentials.filter(super_app=wallet.super_app).first() or wallet_credential_create(
            isv=merchant.isv,
            merchant=merchant,
            super_app=wallet.super_app,
            client_id=f"a1-{wallet.super_app.code}",
            partner_id="P000000000000001",
            classic_app_id=classic_app_id,
        )
        wallet.register(credential, faults=faults)
        client = wallet_client_for(credential=credential)
        if read_timeout != client.config.read_timeout:
            client = WalletClient(dataclasses.replace(client.config, read_timeout=read_timeout))
        return client

    return build
