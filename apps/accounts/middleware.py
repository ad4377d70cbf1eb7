import functools
from collections.abc import Callable

from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from apps.core import rls
from apps.core.tenancy import Principal

from . import second_factor
from .selectors import principal_for_user


class PrincipalMiddleware:
    """Puts the signed-in user's principal on ``request.principal`` (resolved on first use, once).

    A user whose role needs a second factor acts as nobody until this session is verified by one; one who
    has no authenticator yet is sent to set it up (the admin's login page asks the others for a code).
    Comes after django-otp's middleware, which marks the session verified.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        signed_in = functools.cache(lambda: principal_for_user(request.user))  # one membership read a request
        request.principal = SimpleLazyObject(lambda: _acting(request, signed_in()))
        if request.user.is_authenticated:
            # Ended by TenantScopeMiddleware, which also reads a streamed body (a CSV export) in this scope.
            rls.enter(rls.scope_for(request.principal))
        if settings.ADMIN_SECOND_FACTOR_REQUIRED and request.path.startswith("/admin/"):
            setup = reverse("second-factor-setup")
            exempt = request.path == setup or request.path.startswith(reverse("admin:logout"))
            if not exempt and _needs_setup(request, signed_in):
                return redirect(setup)
        return self.get_response(request)


def _acting(request, signed_in: Principal) -> Principal:
    if second_factor.second_factor_required(signed_in) and not request.user.is_verified():
        return Principal.anonymous()
    return signed_in


def _needs_setup(request, signed_in: Callable[[], Principal]) -> bool:
    user = request.user
    if not user.is_authenticated or user.is_verified():
        return False
    return second_factor.second_factor_required(signed_in()) and not second_factor.has_authenticator(user)
