"""The sandbox's settings, each read at call time so tests and operators can change them.

Every name is ``SANDBOX_<NAME>`` in ``django.conf.settings``; the defaults here apply when it is unset.
"""

from django.conf import settings

DEFAULTS = {
    "CURRENCIES": ["USD", "EUR", "GBP", "JPY", "KWD", "PHP", "MYR", "IDR", "THB", "HKD", "SGD", "CNY", "KRW"],
    "PAYMENT_LIMIT": 100_000_000,
    "DEFAULT_BALANCE": 1_000_000_00,
    "NOTIFY_RETRY_SCHEDULE": [0, 120, 600, 600, 3600, 7200, 21600, 54000],
    "NOTIFY_TIMEOUT": 10.0,
    "TIME_SCALE": 1.0,
    "AUTH_CODE_TTL": 600,
    "REVIEW_DELAY": 5,
    "FEE_BPS": 150,
    "BASE_URL": "",
}


def get(name: str):
    return getattr(settings, f"SANDBOX_{name}", DEFAULTS[name])


def scaled_seconds(seconds: float) -> float:
    """Wall-clock delays shrink (or grow) with ``SANDBOX_TIME_SCALE`` so demos need not wait for hours."""
    return seconds * float(get("TIME_SCALE"))
