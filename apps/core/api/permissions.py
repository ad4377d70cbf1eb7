from rest_framework.permissions import BasePermission

from apps.core.tenancy import Principal, PrincipalKind


class HasPrincipal(BasePermission):
    """Authenticated means: a credential resolved to a principal (see ``BearerTokenAuthentication``).

    The few endpoints that start a credential (``POST /api/v1/sessions``) say so by allowing anonymous.
    """

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, Principal) and request.auth.is_authenticated:
            return True
        return request.auth is None and PrincipalKind.ANONYMOUS in getattr(view, "allowed_principals", ())
