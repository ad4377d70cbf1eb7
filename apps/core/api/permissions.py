from rest_framework.permissions import BasePermission

from apps.core.tenancy import Principal


class HasPrincipal(BasePermission):
    """Authenticated means: a credential resolved to a principal (see ``ApiKeyAuthentication``)."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Principal) and request.auth.is_authenticated
