"""Wire-level vocabulary shared by the sandbox's handlers and services: results, errors, field readers.

Field readers raise ``WalletError("PARAM_ILLEGAL")`` naming the offending field by its dotted path, so a
caller learns exactly what to fix.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import re
import urllib.parse

from django.utils import timezone

from . import conf

_DIGITS = re.compile(r"[0-9]+")
CLASSIC_TIME_ZONE = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # Alipay's gateway speaks Beijing time


class Dialect(enum.StrEnum):
    """Which flavour of the OpenAPI a call came in on; ``ams`` speaks v2 without the mini-program ids."""

    V1 = "v1"
    V2 = "v2"
    AMS = "ams"

    @property
    def needs_mini_program_ids(self) -> bool:
        return self is Dialect.V2


class WalletError(Exception):
    """A non-success result; ``status`` is ``F`` unless the outcome is genuinely unknown."""

    def __init__(self, code: str, message: str, status: str = "F") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def result(code: str = "SUCCESS", status: str = "S", message: str = "success") -> dict:
    return {"resultCode": code, "resultStatus": status, "resultMessage": message}


def illegal(field: str, problem: str) -> WalletError:
    return WalletError("PARAM_ILLEGAL", f"{field} {problem}")


def iso(moment: dt.datetime | None) -> str | None:
    """ISO 8601 with offset, to the second, in UTC."""
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def now_iso() -> str:
    return iso(timezone.now())


def classic_time(moment: dt.datetime) -> str:
    """The classic gateway's ``yyyy-MM-dd HH:mm:ss``, Beijing time."""
    return moment.astimezone(CLASSIC_TIME_ZONE).strftime("%Y-%m-%d %H:%M:%S")


def classic_amount(minor_units: int) -> str:
    """Minor units as the classic gateway's major-unit string; its currencies all have two decimals."""
    return f"{minor_units // 100}.{minor_units % 100:02d}"


def dumps(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def fingerprint(body: dict) -> str:
    """Identifies a request's content independent of key order and whitespace (for §5 idempotency)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def string(body: dict, field: str, *, max_length: int, required: bool = True, path: str = "") -> str:
    """A string field; absent or ``""`` is an error when required and ``""`` otherwise."""
    value = body.get(field)
    name = path + field
    if value is None or value == "":
        if required:
            raise illegal(name, "is required")
        return ""
    if not isinstance(value, str):
        raise illegal(name, "must be a string")
    if len(value) > max_length:
        raise illegal(name, f"must be at most {max_length} characters")
    return value


def obj(body: dict, field: str, *, required: bool = False, path: str = "") -> dict:
    value = body.get(field)
    if value is None:
        if required:
            raise illegal(path + field, "is required")
        return {}
    if not isinstance(value, dict):
        raise illegal(path + field, "must be an object")
    return value


def flag(body: dict, field: str, *, default: bool, path: str = "") -> bool:
    """A boolean field, as JSON or as the string the specs prefer (``"true"``); absent is ``default``."""
    value = body.get(field)
    if value is None:
        return default
    if value is True or value == "true":
        return True
    if value is False or value == "false":
        return False
    raise illegal(path + field, "must be true or false")


def url(body: dict, field: str, *, max_length: int = 1024) -> str:
    value = string(body, field, max_length=max_length, required=False)
    parts = urllib.parse.urlsplit(value)
    if value and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise illegal(field, "must be an absolute http(s) URL")
    return value


def datetime_field(body: dict, field: str) -> dt.datetime | None:
    value = string(body, field, max_length=64, required=False)
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise illegal(field, "must be an ISO 8601 date-time with offset") from None
    if moment.tzinfo is None:
        raise illegal(field, "must carry a UTC offset")
    return moment


def amount(body: dict, field: str) -> tuple[str, int]:
    """``{"currency": "USD", "value": "1000"}`` -> ``("USD", 1000)``; value is a positive integer string."""
    money = obj(body, field, required=True)
    currency = string(money, "currency", max_length=3, path=f"{field}.")
    value = string(money, "value", max_length=20, path=f"{field}.")
    if not _DIGITS.fullmatch(value) or int(value) <= 0:
        raise illegal(f"{field}.value", "must be a positive integer string in minor units")
    if currency not in conf.get("CURRENCIES"):
        raise WalletError("CURRENCY_NOT_SUPPORT", f"currency {currency} is not supported")
    return currency, int(value)


def money(currency: str, value: int) -> dict:
    return {"currency": currency, "value": str(value)}


def contains_nul(value: object) -> bool:
    """NUL cannot be stored by PostgreSQL (text or jsonb), so any input carrying one is refused up front."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(key) or contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(contains_nul(item) for item in value)
    return False


def one_of(body: dict, first: str, second: str) -> tuple[str, str]:
    """Two alternative lookup keys (``paymentId`` / ``paymentRequestId``): at least one is required."""
    found = string(body, first, max_length=64, required=False), string(body, second, max_length=64, required=False)
    if not any(found):
        raise illegal(f"{first} or {second}", "is required")
    return found
