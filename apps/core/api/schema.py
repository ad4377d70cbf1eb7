"""OpenAPI additions every operation shares: the ``Merchant-Id`` header and the error envelope, and on every
POST of the tenant API the ``Idempotency-Key`` header."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from apps.core.api.views import TenantApiView
from apps.core.tenancy import PrincipalKind


class ErrorSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="invalid_request, authentication_error, not_found, …")
    code = serializers.CharField(help_text="Stable, namespaced code, e.g. `auth.api_key_revoked`.")
    message = serializers.CharField(help_text="What went wrong and what to fix.")
    attr = serializers.CharField(allow_null=True, help_text="The offending field, if any.")
    request_id = serializers.CharField()


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorSerializer()


_ERROR = OpenApiResponse(ErrorEnvelopeSerializer, description="Error envelope")
_STANDARD_ERRORS = {"400": _ERROR, "401": _ERROR, "404": _ERROR, "429": _ERROR}

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
    description=(
        "1-255 printable ASCII characters, unique per request (a UUID). Sent again with the same request within "
        "24 hours, it returns the first response, byte for byte, with `Idempotent-Replayed: true`; with another "
        "request it is a 422 `idempotency.key_reused`, and while the first is still running a 409 "
        "`idempotency.request_in_flight`."
    ),
)
_IDEMPOTENCY_ERRORS = {"409": _ERROR, "422": _ERROR}


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
        errors = {**_STANDARD_ERRORS, **_IDEMPOTENCY_ERRORS} if self._is_idempotent_post() else _STANDARD_ERRORS
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
