from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.errors import ApplicationError
from apps.core.money import Money, currency_exponent
from apps.merchants.api.serializers import MerchantDetailOutputSerializer
from apps.superapps.models import SuperApp, TradePayMode

from ..models import MAX_MINOR_UNITS, Feature, MiniProgramStatus


class StrictInputSerializer(serializers.Serializer):
    """Refuses fields it does not know: a misspelt or read-only field must not be silently ignored."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {unknown[0]: [serializers.ErrorDetail("This field is not accepted here.", code="unknown_field")]}
                )
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.INT)
class MinorUnitsField(serializers.IntegerField):
    """A JSON integer of minor units. Strings and decimals are refused, never read as "10.00" → 10."""

    def to_internal_value(self, data):
        if type(data) is not int:
            self.fail("invalid")
        return super().to_internal_value(data)


class MoneyInputSerializer(StrictInputSerializer):
    amount = MinorUnitsField(min_value=1, max_value=MAX_MINOR_UNITS, help_text="In the currency's minor unit.")
    currency = serializers.CharField(max_length=3, help_text="ISO 4217, e.g. USD.")

    def validate_currency(self, value: str) -> str:
        try:
            currency_exponent(value)
        except ApplicationError as error:
            raise serializers.ValidationError(error.message, code="unknown_currency") from None
        return value

    def to_internal_value(self, data) -> Money:
        values = super().to_internal_value(data)
        return Money(value=values["amount"], currency=values["currency"])


class PriceOutputSerializer(serializers.Serializer):
    amount = serializers.IntegerField(source="price", help_text="In the currency's minor unit.")
    currency = serializers.CharField()


# --- mini programs ---------------------------------------------------------------------------------


class MiniProgramOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    super_app = serializers.CharField(source="super_app.code", help_text="The super app's code.")
    app_id = serializers.CharField(help_text="The super app's appId of this mini program.")
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=MiniProgramStatus.choices)
    trade_pay_mode = serializers.ChoiceField(choices=TradePayMode.choices)
    default_currency = serializers.CharField()
    webhook_url = serializers.CharField(help_text="Empty when none is set.")
    features = serializers.SerializerMethodField(help_text="The enabled features.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_features(self, mini_program) -> list[str]:
        enabled = {row.feature for row in mini_program.features.all() if row.enabled}
        return [feature for feature in Feature.values if feature in enabled]


class MiniProgramCreatedSerializer(MiniProgramOutputSerializer):
    webhook_secret = serializers.SerializerMethodField(
        help_text="Signs the webhooks of this mini program. Shown only in this response: store it now."
    )

    def get_webhook_secret(self, mini_program) -> str:
        return self.context["webhook_secret"]


class SuperAppCodeField(serializers.SlugRelatedField):
    """A super app by its code. Text no code holds (NUL, which PostgreSQL cannot even compare) is refused
    before the lookup."""

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("invalid")
        return super().to_internal_value(data)


class MiniProgramCreateInputSerializer(StrictInputSerializer):
    super_app = SuperAppCodeField(
        slug_field="code", queryset=SuperApp.objects.all(), help_text="The super app's code, e.g. 'sandbox'."
    )
    app_id = serializers.CharField(max_length=64, help_text="The appId the super app assigned.")
    name = serializers.CharField(max_length=100)
    trade_pay_mode = serializers.ChoiceField(choices=TradePayMode.choices, help_text="One the super app supports.")
    default_currency = serializers.CharField(max_length=3, help_text="ISO 4217, e.g. USD.")
    webhook_url = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class MiniProgramUpdateInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100, required=False)
    status = serializers.ChoiceField(choices=MiniProgramStatus.choices, required=False)
    webhook_url = serializers.CharField(max_length=500, required=False, allow_blank=True, help_text="Empty: none.")
    trade_pay_mode = serializers.ChoiceField(choices=TradePayMode.choices, required=False)


class MiniProgramFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=MiniProgramStatus.choices, required=False)
    super_app = serializers.CharField(max_length=40, required=False, help_text="A super app's code.")


class FeatureOutputSerializer(serializers.Serializer):
    feature = serializers.ChoiceField(choices=Feature.choices)
    enabled = serializers.BooleanField()


class FeatureSetInputSerializer(StrictInputSerializer):
    feature = serializers.ChoiceField(choices=Feature.choices)
    enabled = serializers.BooleanField(help_text="Payment cannot be turned off.")


class WebhookSecretOutputSerializer(serializers.Serializer):
    rotated_at = serializers.DateTimeField(source="webhook_secret_rotated_at", help_text="When it was generated.")


class WebhookSecretRotatedSerializer(WebhookSecretOutputSerializer):
    secret = serializers.SerializerMethodField(help_text="The new secret. Shown only in this response: store it now.")

    def get_secret(self, mini_program) -> str:
        return self.context["webhook_secret"]


# --- products --------------------------------------------------------------------------------------


class ProductOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    sku = serializers.CharField()
    name = serializers.CharField()
    price = PriceOutputSerializer(source="*")
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ProductCreateInputSerializer(StrictInputSerializer):
    sku = serializers.CharField(max_length=64, help_text="Unique in the merchant's catalogue.")
    name = serializers.CharField(max_length=200)
    price = MoneyInputSerializer()
    active = serializers.BooleanField(required=False, default=True)


class ProductUpdateInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=200, required=False)
    price = MoneyInputSerializer(required=False, help_text="In the product's currency, which never changes.")
    active = serializers.BooleanField(required=False)


class ProductFilterSerializer(serializers.Serializer):
    active = serializers.BooleanField(required=False, allow_null=True, default=None)
    sku = serializers.CharField(max_length=64, required=False)


class MerchantOverviewSerializer(MerchantDetailOutputSerializer):
    mini_programs = serializers.SerializerMethodField()

    def get_mini_programs(self, merchant) -> MiniProgramOutputSerializer(many=True):
        return MiniProgramOutputSerializer(self.context["mini_programs"], many=True).data
