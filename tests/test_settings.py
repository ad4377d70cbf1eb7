"""Production settings: refuse to start without secrets, and pass Django's deployment checklist."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    return subprocess.run(  # noqa: S603 - our own manage.py with fixed arguments
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _production_env() -> dict[str, str]:
    return {
        "ISV_ENV": "production",
        "SECRET_KEY": "x" * 20 + Fernet.generate_key().decode(),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "payments.example.com",
    }


def test_deploy_checklist_is_clean_with_production_variables(tmp_path):
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=_production_env(), tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("variable", ["SECRET_KEY", "FIELD_ENCRYPTION_KEYS"])
def test_production_refuses_to_start_without_its_secrets(tmp_path, variable):
    env = _production_env()
    del env[variable]
    result = _manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert variable in result.stderr


def test_the_embedded_default_generates_its_secrets_once(tmp_path):
    first = _manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        env={},
        tmp_path=tmp_path,
    )
    second = _manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        env={},
        tmp_path=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert len(first.stdout.strip()) > 40
    assert (tmp_path / "dev-secrets.json").stat().st_mode & 0o077 == 0


def test_production_serves_neither_the_sandbox_nor_the_demo(tmp_path):
    probe = (
        "from django.urls import Resolver404, resolve\n"
        "for path in ('/demo/', '/demo/demo-coffee-app/', '/sandbox/', '/sandbox/cashier/x', '/admin/'):\n"
        "    try:\n"
        "        resolve(path); print(path, 'served')\n"
        "    except Resolver404:\n"
        "        print(path, 'absent')\n"
    )
    result = _manage("shell", "-c", probe, env=_production_env(), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("/")] == [
        "/demo/ absent",
        "/demo/demo-coffee-app/ absent",
        "/sandbox/ absent",
        "/sandbox/cashier/x absent",
        "/admin/ served",
    ]


def test_production_refuses_private_webhook_hosts(tmp_path):
    env = {**_production_env(), "WEBHOOK_ALLOW_PRIVATE_HOSTS": "true"}
    result = _manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "WEBHOOK_ALLOW_PRIVATE_HOSTS" in result.stderr
