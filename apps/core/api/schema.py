"""OpenAPI additions every operation shares: the ``Merchant-Id`` header and the error envelope with every status
the base view can answer (``TenantApiView``, the exception handler), and on every POST of the tenant API the
``Idempotency-Key`` header."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from apps.core.api.views import TenantApiView
from apps.core.tenancy import PrincipalKind


class ErrorDetailSerializer(serializers.Serializer):
    attr = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="invalid_request, authentication_error, not_found, …")
    code = serializers.CharField(help_text="Stable, namespaced code, e.g. `auth.api_key_revoked`.")
    message = serializers.CharField(help_text="What went wrong and what to fix.")
    attr = serializers.CharField(allow_null=True, help_text="The offending field, if any.")
    request_id = serializers.CharField()
    details = ErrorDetailSerializer(
        many=True, required=False, help_text="Invalid input only: every offending field, the first one above."
    )


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorSerializer()


def error_response(description: str) -> OpenApiResponse:
    """An error status an operation answers with the error envelope, and when it does."""
    return OpenApiResponse(ErrorEnvelopeSerializer, description=description)


# Any request can be answered with these.
_STANDARD_ERRORS = {
    "400": error_response("Invalid input (`validation.*` or the operation's own code; `attr` names the field)."),
    "401": error_response("No credential, or one that is malformed, unknown, revoked or expired."),
    "403": error_response("A credential of a kind this operation does not serve."),
    "404": error_response("Nothing of that id within the credential's scope."),
    "406": error_response("The Accept header asks for another media type than JSON."),
    "429": error_response("Too many requests (or failed authentications); wait for `Retry-After` seconds."),
    "503": error_response("The service cannot reach its database just now; retry after `Retry-After` seconds."),
}
# A request that sends a body can also be answered with these.
_BODY_ERRORS = {
    "413": error_response("The body is larger than this operation accepts."),
    "415": error_response("The body's Content-Type is not one this operation reads."),
}

MERCHANT_ID_HEADER = OpenApiParameter(
    name="Merchant-Id",
    location=OpenApiParameter.HEADER,
    required=False,
    description="With an ISV key: the id of the ISV's merchant to act for (`mer_…`). Merchant keys omit it.",
)

IDEMPOTENCY_KEY_HEADER = OpenApiParameter(
    name="Idempotency-Key",
    location=OpenApiParameter.HEADER,
    required=False,
    pattern=r"^[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$",  # what idempotency_key_parse accepts
    description=(
        "1-255 printable ASCII characters, unique per request (a UUID). Sent again with the same request within "
        "24 hours, it returns the first response, byte for byte, with `Idempotent-Replayed: true`; with another "
        "request it is a 422 `idempotency.key_reused`, and while the first is still running a 409 "
        "`idempotency.request_in_flight`."
    ),
)
_IDEMPOTENCY_ERRORS = {
    "409": error_response(
        "The first request with this Idempotency-Key is still running, or the object's state does not allow it."
    ),
    "422": error_response("The Idempotency-Key was sent with another request."),
}


class PlatformAutoSchema(AutoSchema):
    def _is_idempotent_post(self) -> bool:
        """A POST of the tenant API that a credential makes (a key without a caller to belong to is ignored)."""
        if self.method != "POST" or not isinstance(self.view, TenantApiView):
            return False
        writers = self.view.write_principals or self.view.allowed_principals
        return bool(writers - {PrincipalKind.ANONYMOUS})

    def get_override_parameters(self):
        parameters = [*super().get_override_parameters(), MERCHANT_ID_HEADER]
        return [*parameters, IDEMPOTENCY_KEY_HEADER] if self._is_idempotent_post() else parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        errors = dict(_STANDARD_ERRORS)
        if self.method in ("POST", "PUT", "PATCH"):
            errors.update(_BODY_ERRORS)
        if self._is_idempotent_post():
            errors.update(_IDEMPOTENCY_ERRORS)
        for code, response in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses


def paginated(serializer_class: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The schema of one cursor page of ``serializer_class`` items."""
    name = serializer_class.__name__.removesuffix("Serializer").removesuffix("Output")
    return type(
        f"Paginated{name}List",
        (serializers.Serializer,),
        {
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null on the last."),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )
