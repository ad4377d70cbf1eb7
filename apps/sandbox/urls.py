import datetime as dt

from django.urls import path, register_converter

from . import views
from .api import HANDLERS
from .protocol import Dialect

app_name = "sandbox"


class DateConverter:
    """``2026-01-31`` as a ``date``; an impossible date is a 404, never a 500."""

    regex = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"

    def to_python(self, value: str) -> dt.date:
        return dt.date.fromisoformat(value)

    def to_url(self, value: dt.date) -> str:
        return value.isoformat()


register_converter(DateConverter, "isodate")

# The same handlers under /v1/, /v2/ and the AMS-style /ams/api/v1/ (which speaks the v2 field names).
OPENAPI_PREFIXES = {"v1/": Dialect.V1, "v2/": Dialect.V2, "ams/api/v1/": Dialect.AMS}

urlpatterns = [
    *(
        path(prefix + endpoint, views.openapi, {"dialect": dialect, "handler": handler})
        for prefix, dialect in OPENAPI_PREFIXES.items()
        for endpoint, handler in HANDLERS.items()
    ),
    path("", views.home, name="home"),
    path("public-key", views.public_key, name="public-key"),
    path("authcode", views.auth_code, name="authcode"),
    path("settlements/<str:client_id>/<isodate:day>.csv", views.settlement_file, name="settlement-file"),
    path("cashier/<slug:payment_id>", views.cashier, name="cashier"),
    path("tradepay", views.tradepay, name="tradepay"),
    path("tradepay/<slug:wallet_no>", views.tradepay_order, name="tradepay-order"),
    path("gateway.do", views.classic_gateway, name="gateway"),
]
