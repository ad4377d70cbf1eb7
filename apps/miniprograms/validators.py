"""Field validators of mini programs and products. They run in ``validate_for_save()`` and in admin forms
alike, so a rule written here holds on every write path. None of them touches the network.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from apps.core.errors import ApplicationError
from apps.core.money import currency_exponent

# Identifiers from outside (a super app's appId, a merchant's SKU): printable ASCII, no spaces or quotes.
_REFERENCE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
validate_app_id = RegexValidator(
    _REFERENCE, "An appId is letters, digits, '.', '_' and '-', starting with a letter or digit.", "invalid_app_id"
)
validate_sku = RegexValidator(
    _REFERENCE, "A SKU is letters, digits, '.', '_' and '-', starting with a letter or digit.", "invalid_sku"
)
# Legacy IPv4 spellings (``2130706433``, ``0x7f.1``, ``127.1``) that HTTP clients still resolve as addresses.
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$")


def validate_currency(code: str) -> None:
    """An ISO 4217 currency that has a minor unit (what ``Money`` accepts)."""
    try:
        currency_exponent(code)
    except ApplicationError as error:
        raise ValidationError(error.message, code="unknown_currency") from None


def private_webhook_hosts_allowed() -> bool:
    """Loopback and private addresses are for local development only (the demo merchants' webhooks):
    never in production, whatever DEBUG or WEBHOOK_ALLOW_PRIVATE_HOSTS say."""
    if settings.PRODUCTION:
        return False
    return bool(settings.DEBUG or getattr(settings, "WEBHOOK_ALLOW_PRIVATE_HOSTS", False))


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC_HOST.match(host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def validate_webhook_url(url: str) -> None:
    """Where the platform will POST a merchant's webhooks: refuse what would turn it into a proxy into its
    own network. HTTPS only in production; no credentials in the URL; no IP address literals (and so no
    loopback, private or link-local ones) unless ``private_webhook_hosts_allowed()``.

    Host names are not resolved here (a name can be re-pointed after this check): the webhook sender must
    check the address it actually connects to.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        raise ValidationError("Enter a valid URL.", code="invalid") from None
    allowed_schemes = ("https",) if settings.PRODUCTION else ("https", "http")
    if parts.scheme.lower() not in allowed_schemes:
        raise ValidationError("The webhook URL must use https.", code="webhook_url_insecure")
    if "@" in parts.netloc:
        raise ValidationError("The webhook URL must not contain credentials.", code="webhook_url_credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValidationError("The webhook URL has no host.", code="invalid")
    if private_webhook_hosts_allowed():
        return
    address = _ip_literal(host)
    local_name = host == "localhost" or host.endswith(".localhost")
    if local_name or (address is not None and (not address.is_global or address.is_multicast)):
        raise ValidationError(
            "The webhook URL must point at a public host, not a loopback or private address.",
            code="webhook_url_private_host",
        )
    if address is not None:
        raise ValidationError(
            "The webhook URL must name its host, not an IP address (a certificate names a host).",
            code="webhook_url_ip_literal",
        )
