from django.shortcuts import redirect
from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from apps.core.tenancy import Principal

from . import second_factor
from .selectors import principal_for_user


class PrincipalMiddleware:
    """Puts the signed-in user's principal on ``request.principal`` (resolved on first use).

    A user whose role needs a second factor acts as nobody until this session is verified by one; one who
    has no authenticator yet is sent to set it up (the admin's login page asks the others for a code).
    Comes after django-otp's middleware, which marks the session verified.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        request.principal = SimpleLazyObject(lambda: _principal(request))
        if request.path.startswith("/admin/") and _needs_setup(request):
            setup = reverse("second-factor-setup")
            if request.path != setup and not request.path.startswith(reverse("admin:logout")):
                return redirect(setup)
        return self.get_response(request)


def _principal(request) -> Principal:
    principal = principal_for_user(request.user)
    if second_factor.second_factor_required(principal) and not request.user.is_verified():
        return Principal.anonymous()
    return principal


def _needs_setup(request) -> bool:
    user = request.user
    if not user.is_authenticated or user.is_verified():
        return False
    return second_factor.second_factor_required(principal_for_user(user)) and not second_factor.has_authenticator(user)
