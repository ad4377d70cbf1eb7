from drf_spectacular.extensions import OpenApiAuthenticationExtension

from apps.core.api.authentication import BearerTokenAuthentication

from . import services


class ApiKeyAuthentication(BearerTokenAuthentication):
    """``Authorization: Bearer <api key>``, plus ``Merchant-Id`` for an ISV key acting for a merchant."""

    def resolve(self, request, token: str):
        return services.api_key_authenticate(
            secret=token, merchant_public_id=request.headers.get("Merchant-Id") or None
        )


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes API-key authentication in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "API key"}
