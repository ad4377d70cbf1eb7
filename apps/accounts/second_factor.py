"""The admin's second factor: TOTP (RFC 6238) through django-otp.

Anyone may add an authenticator; once they have, signing in asks for its code. Operators and ISV admins must
have one when ``ADMIN_SECOND_FACTOR_REQUIRED`` is on (the default in production): until their session is
verified by a code they act as nobody, and one without an authenticator is sent to set one up first.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.core.tenancy import Principal, PrincipalKind

AUTHENTICATOR_NAME = "Authenticator app"


def second_factor_required(principal: Principal) -> bool:
    if not settings.ADMIN_SECOND_FACTOR_REQUIRED:
        return False
    return principal.is_operator or (principal.kind is PrincipalKind.ISV_STAFF and principal.can_edit)


def has_authenticator(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def authenticator_pending(user) -> TOTPDevice:
    """The user's authenticator being set up: made once, kept until confirmed, so a reload shows the same
    secret as the one already scanned."""
    device, _ = TOTPDevice.objects.get_or_create(user=user, confirmed=False, defaults={"name": AUTHENTICATOR_NAME})
    return device


def authenticator_confirm(*, request, device: TOTPDevice, token: str) -> bool:
    """Confirm the authenticator with a code from it and verify this session; false if the code is wrong."""
    if not device.verify_token(token.strip().replace(" ", "")):
        return False
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
    otp_login(request, device)
    return True
