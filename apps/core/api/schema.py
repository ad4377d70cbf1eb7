"""OpenAPI additions every operation shares: the ``Merchant-Id`` header and the error envelope."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


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


class PlatformAutoSchema(AutoSchema):
    def get_override_parameters(self):
        return [*super().get_override_parameters(), MERCHANT_ID_HEADER]

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, response in _STANDARD_ERRORS.items():
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
