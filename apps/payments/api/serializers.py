from rest_framework import serializers

from apps.core.errors import ApplicationError
from apps.core.money import Money

from ..models import OrderStatus


class OrderCreateInputSerializer(serializers.Serializer):
    mini_program = serializers.CharField(max_length=64, help_text="The mini program's appId.")
    amount = serializers.IntegerField(min_value=1, help_text="In the currency's minor unit (1250 = 12.50 USD).")
    currency = serializers.CharField(min_length=3, max_length=3, help_text="ISO 4217, e.g. USD.")
    description = serializers.CharField(max_length=256)
    reference = serializers.CharField(max_length=64, required=False, help_text="Your order number; unique.")
    metadata = serializers.DictField(required=False, help_text="Small JSON object kept with the order.")
    expires_in = serializers.IntegerField(required=False, min_value=60, max_value=86400, help_text="Seconds.")

    def validate_metadata(self, value):
        if len(str(value)) > 2000:
            raise serializers.ValidationError("At most 2000 characters of JSON.", code="too_large")
        return value

    def validate(self, data):
        if isinstance(data["amount"], bool):
            raise serializers.ValidationError({"amount": "An integer of minor units."})
        try:
            data["money"] = Money(data.pop("amount"), data.pop("currency"))
        except ApplicationError as error:
            raise serializers.ValidationError(
                {"currency": serializers.ErrorDetail(error.message, "unknown_currency")}
            ) from None
        return data


class OrderOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    mini_program = serializers.CharField(source="mini_program.app_id")
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    refunded_amount = serializers.IntegerField()
    description = serializers.CharField()
    reference = serializers.CharField(allow_null=True)
    metadata = serializers.DictField()
    expires_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class OrderCreatedSerializer(OrderOutputSerializer):
    trade_pay = serializers.SerializerMethodField(help_text="Pass this object to my.tradePay as it is.")

    def get_trade_pay(self, order) -> dict:
        return self.context["trade_pay"]


class OrderListFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    mini_program = serializers.CharField(max_length=64, required=False)
    reference = serializers.CharField(max_length=64, required=False)


class RefundCreateInputSerializer(serializers.Serializer):
    amount = serializers.IntegerField(required=False, min_value=1, help_text="Minor units; default: all that is left.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=256, default="")


class RefundOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    order = serializers.CharField(source="order.public_id")
    status = serializers.CharField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()
