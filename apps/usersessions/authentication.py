from drf_spectacular.extensions import OpenApiAuthenticationExtension

from apps.core.api.authentication import BearerTokenAuthentication

from . import services


class UserSessionAuthentication(BearerTokenAuthentication):
    """``Authorization: Bearer ust_…``: a mini program user's session (see ``POST /api/v1/sessions``)."""

    def claims(self, token: str) -> bool:
        return token.startswith(services.TOKEN_PREFIX)

    def resolve(self, request, token: str):
        return services.session_authenticate(token=token)


class UserSessionAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = UserSessionAuthentication
    name = "UserSession"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "user session (ust_…)"}
