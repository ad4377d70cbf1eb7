from django.utils.functional import SimpleLazyObject

from .selectors import principal_for_user


class PrincipalMiddleware:
    """Puts the signed-in user's principal on ``request.principal`` (resolved on first use)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        request.principal = SimpleLazyObject(lambda: principal_for_user(request.user))
        return self.get_response(request)
