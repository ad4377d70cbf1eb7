"""Conformance against the third-party SDKs, run as peers in their own venv (``make conformance-env``).

global-open-sdk-python pins cryptography==44.0.3, so the SDKs live in ``.venv-conformance`` and the tests
drive them through ``tests/conformance/peers/peer.py``: a JSON request on stdin, a JSON result on stdout.
Without that venv the tests are skipped, and fail instead when ``REQUIRE_SERVICES=1`` (as in CI).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command

from apps.superapps.client.keys import generate_key_pair, load_private_key

ROOT = Path(__file__).resolve().parents[2]
PEER_PYTHON = ROOT / ".venv-conformance" / "bin" / "python"
PEER_SCRIPT = Path(__file__).resolve().parent / "peers" / "peer.py"

# The peer sees no project code: no PYTHONPATH, and not its own folder on sys.path either.
PEER_ENV = {
    **{key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")},
    "PYTHONIOENCODING": "utf-8",
    "PYTHONSAFEPATH": "1",
}

Peer = Callable[[str, dict], dict]

# The merchant as registered with the sandbox wallet (OpenAPI client id and classic gateway app_id). The client
# id must not start with SANDBOX_: the AMS SDK would rewrite the path to /ams/sandbox/api/...
SANDBOX_CLIENT_ID = "2022070614185300099001"
SANDBOX_CLASSIC_APP_ID = "2021004100000009"


@pytest.fixture(scope="session")
def peer_python() -> Path:
    if not PEER_PYTHON.exists():
        reason = f"needs the SDK peers in {PEER_PYTHON.parent.parent.name}/ (run `make conformance-env`)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"REQUIRE_SERVICES=1 but this test {reason}")
        pytest.skip(reason)
    return PEER_PYTHON


@pytest.fixture(scope="session")
def peer(peer_python) -> Peer:
    """``peer(command, payload) -> dict``: run one peer command in the SDK venv."""

    def run(command: str, payload: dict) -> dict:
        completed = subprocess.run(  # noqa: S603 - our own script, run with the venv's interpreter
            [str(peer_python), str(PEER_SCRIPT), command],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=PEER_SCRIPT.parent,
            env=PEER_ENV,
        )
        if completed.returncode != 0:
            pytest.fail(f"peer {command} exited {completed.returncode}:\n{completed.stderr}")
        return json.loads(completed.stdout)

    return run


def pem_body(pem: str) -> str:
    """The bare base64 body of a PEM, the form keys are exchanged in."""
    return "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))


class KeyPair:
    """One RSA-2048 pair, in our format (PKCS#8 / SPKI PEM) and in the SDKs' (PKCS#1 private key)."""

    def __init__(self) -> None:
        self.private_pem, self.public_pem = generate_key_pair()
        self.private_key = load_private_key(self.private_pem)
        self.public_key = self.private_key.public_key()
        self.private_pkcs1_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self.private_pkcs1_body = pem_body(self.private_pkcs1_pem)
        self.public_body = pem_body(self.public_pem)


@pytest.fixture(scope="session")
def merchant_keys() -> KeyPair:
    return KeyPair()


@pytest.fixture(scope="session")
def wallet_keys() -> KeyPair:
    return KeyPair()


@pytest.fixture(scope="session")
def other_keys() -> KeyPair:
    return KeyPair()


@pytest.fixture
def sandbox_public_pem(merchant_keys, tmp_path) -> str:
    """Register the merchant's public key with the sandbox wallet; the wallet's public key (PEM)."""
    key_file = tmp_path / "merchant_public.pem"
    key_file.write_text(merchant_keys.public_pem)
    call_command(
        "sandbox_client_register",
        "--client-id",
        SANDBOX_CLIENT_ID,
        "--public-key-file",
        str(key_file),
        "--classic-app-id",
        SANDBOX_CLASSIC_APP_ID,
        stdout=io.StringIO(),
    )
    out = io.StringIO()
    call_command("sandbox_public_key", stdout=out)
    pem = re.search(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", out.getvalue(), re.DOTALL)
    assert pem, out.getvalue()
    return pem.group(0) + "\n"
