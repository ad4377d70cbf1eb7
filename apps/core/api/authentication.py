"""The one way a bearer credential becomes a principal, whatever kind of token it is."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication

from apps.core.errors import ApplicationError, AuthenticationError
from apps.core.tenancy import Principal

from .throttling import FailedAuthenticationLimit


class BearerTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>``. Subclasses say which tokens are theirs (``claims``) and resolve
    them (``resolve``); every failure counts against the caller's address (``FailedAuthenticationLimit``)."""

    def claims(self, token: str) -> bool:
        """Whether this class handles ``token``; the last class in the list takes the rest."""
        return True

    def resolve(self, request, token: str) -> Principal:
        raise NotImplementedError

    def authenticate(self, request):
        header = request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if token and not self.claims(token):
            return None
        limit = FailedAuthenticationLimit()
        limit.check(request)
        try:
            if scheme.lower() != "bearer" or not token or " " in token:
                raise AuthenticationError(
                    "auth.malformed_authorization", "Send the credential as 'Authorization: Bearer <token>'."
                )
            principal = self.resolve(request, token)
        except ApplicationError:
            limit.record_failure(request)
            raise
        return principal, principal

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
