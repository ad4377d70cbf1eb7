from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication

from apps.core.api.throttling import FailedAuthenticationLimit
from apps.core.errors import ApplicationError, AuthenticationError

from . import services


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer <api key>``, plus ``Merchant-Id`` for an ISV key acting for a merchant."""

    def authenticate(self, request):
        header = request.headers.get("Authorization")
        if header is None:
            return None
        limit = FailedAuthenticationLimit()
        limit.check(request)
        try:
            scheme, _, secret = header.strip().partition(" ")
            secret = secret.strip()
            if scheme.lower() != "bearer" or not secret or " " in secret:
                raise AuthenticationError(
                    "auth.malformed_authorization", "Send the key as 'Authorization: Bearer <api key>'."
                )
            principal = services.api_key_authenticate(
                secret=secret, merchant_public_id=request.headers.get("Merchant-Id") or None
            )
        except ApplicationError:
            limit.record_failure(request)
            raise
        return principal, principal

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes API-key authentication in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "API key"}
