import json
import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.errors import ApplicationError
from apps.core.money import Money, currency_exponent
from apps.miniprograms.models import MAX_MINOR_UNITS
from apps.payments import selectors
from apps.payments.services import CLIENT_RESULT_MEANINGS

from ..models import OrderKind, OrderStatus, PaymentStatus, PreAuthorizationStatus, ReleaseStatus


class OrderLineSerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.IntegerField(help_text="Minor units, as priced when the order was made.")


class TradePaySerializer(serializers.Serializer):
    # Spelled as my.tradePay spells them.
    paymentUrl = serializers.URLField(required=False)
    orderStr = serializers.CharField(required=False)


# What PostgreSQL's JSON cannot hold: NUL, and half of a UTF-16 surrogate pair (JSON's "\ud800" alone).
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def _contains_unstorable_text(value) -> bool:
    if isinstance(value, str):
        return _UNSTORABLE_CHARACTER.search(value) is not None
    if isinstance(value, dict):
        return any(_contains_unstorable_text(key) or _contains_unstorable_text(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_unstorable_text(item) for item in value)
    return False


class OrderItemInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=1000)


class OrderCreateInputSerializer(serializers.Serializer):
    mini_program = serializers.CharField(
        max_length=64, required=False, help_text="The mini program's appId (a user session's own by default)."
    )
    amount = serializers.IntegerField(
        min_value=1,
        max_value=MAX_MINOR_UNITS,
        required=False,
        help_text="In the currency's minor unit (1250 = 12.50 USD). Or send items.",
    )
    currency = serializers.CharField(min_length=3, max_length=3, required=False, help_text="ISO 4217, e.g. USD.")
    items = OrderItemInputSerializer(
        many=True, required=False, max_length=50, help_text="Catalogue lines, priced by the platform. Or send amount."
    )
    description = serializers.CharField(max_length=256)
    reference = serializers.CharField(max_length=64, required=False, help_text="Your order number; unique.")
    metadata = serializers.DictField(required=False, help_text="Small JSON object kept with the order.")
    expires_in = serializers.IntegerField(required=False, min_value=60, max_value=86400, help_text="Seconds.")

    def validate_metadata(self, value):
        if len(json.dumps(value)) > 2000:
            raise serializers.ValidationError("At most 2000 characters of JSON.", code="too_large")
        if _contains_unstorable_text(value):
            raise serializers.ValidationError(
                "Text must not contain NUL characters or unpaired surrogates (U+D800 to U+DFFF).", code="invalid"
            )
        return value

    def validate(self, data):
        if isinstance(data.get("amount"), bool):
            raise serializers.ValidationError({"amount": "An integer of minor units."})
        has_amount, has_items = "amount" in data, bool(data.get("items"))
        if has_amount == has_items:
            raise serializers.ValidationError(
                {"items": serializers.ErrorDetail("Send either amount and currency, or items.", "amount_or_items")}
            )
        if has_amount and "currency" not in data:
            raise serializers.ValidationError(
                {"currency": serializers.ErrorDetail("Required with amount.", "required")}
            )
        if "currency" in data:
            try:
                currency_exponent(data["currency"])
            except ApplicationError as error:
                raise serializers.ValidationError(
                    {"currency": serializers.ErrorDetail(error.message, "unknown_currency")}
                ) from None
        if has_amount:
            data["money"] = Money(data.pop("amount"), data.pop("currency"))
        return data


class OrderOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    mini_program = serializers.CharField(source="mini_program.app_id")
    kind = serializers.ChoiceField(choices=OrderKind.choices, help_text="A pre_authorization is paid by captures.")
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    paid_amount = serializers.IntegerField(help_text="What was collected (for a pre-authorization, captured).")
    refunded_amount = serializers.IntegerField()
    description = serializers.CharField()
    reference = serializers.CharField(allow_null=True)
    items = OrderLineSerializer(many=True)
    metadata = serializers.DictField()
    trade_pay = serializers.SerializerMethodField(
        help_text="While the order awaits the user: pass this object to my.tradePay as it is. Else {}."
    )
    expires_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    @extend_schema_field(TradePaySerializer)
    def get_trade_pay(self, order) -> dict:
        return selectors.trade_pay_of(order)


class ClientResultInputSerializer(serializers.Serializer):
    result_code = serializers.ChoiceField(
        choices=sorted(CLIENT_RESULT_MEANINGS), help_text="What my.tradePay returned in resultCode."
    )


class OrderListFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    kind = serializers.ChoiceField(choices=OrderKind.choices, required=False)
    created_after = serializers.DateTimeField(required=False, help_text="Created at or after (ISO 8601).")
    created_before = serializers.DateTimeField(required=False, help_text="Created before (ISO 8601).")
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


# --- pre-authorizations ----------------------------------------------------------------------------


class PreAuthorizationCreateInputSerializer(OrderCreateInputSerializer):
    amount = serializers.IntegerField(
        min_value=1,
        max_value=MAX_MINOR_UNITS,
        required=False,
        help_text="To freeze, in the currency's minor unit (50000 = 500.00 USD). Or send items.",
    )
    expires_in = serializers.IntegerField(
        required=False,
        min_value=60,
        max_value=15 * 86400,
        help_text="Seconds, whole minutes (the freeze's pay_timeout); default 7 days. Nothing can be captured after.",
    )


class CaptureInputSerializer(serializers.Serializer):
    amount = serializers.IntegerField(min_value=1, max_value=MAX_MINOR_UNITS, help_text="Minor units to capture.")
    final = serializers.BooleanField(
        help_text="true: the last capture, the rest is released (COMPLETE); false: the rest stays frozen."
    )


class ReleaseInputSerializer(serializers.Serializer):
    amount = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_MINOR_UNITS, help_text="Minor units; default: all still frozen."
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=256, default="")


class CaptureOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id", help_text="The capture is a payment of the order.")
    amount = serializers.IntegerField()
    final = serializers.BooleanField(source="capture_final")
    status = serializers.ChoiceField(choices=PaymentStatus.choices)
    failure_code = serializers.CharField()
    created_at = serializers.DateTimeField()


class ReleaseOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    out_request_no = serializers.CharField()
    amount = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ReleaseStatus.choices)
    failure_code = serializers.CharField()
    created_at = serializers.DateTimeField()


class PreAuthorizationOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    order = serializers.CharField(source="order.public_id", help_text="Each capture is a payment of this order.")
    mini_program = serializers.CharField(source="order.mini_program.app_id")
    status = serializers.ChoiceField(choices=PreAuthorizationStatus.choices)
    amount = serializers.IntegerField(help_text="Asked to freeze, in minor units.")
    currency = serializers.CharField()
    captured_amount = serializers.IntegerField()
    released_amount = serializers.IntegerField()
    remaining_amount = serializers.IntegerField(help_text="Still frozen (before authorisation: to be frozen).")
    description = serializers.CharField(source="order.description")
    reference = serializers.CharField(source="order.reference", allow_null=True)
    auth_no = serializers.CharField(help_text="The super app's number for the authorization, once known.")
    out_order_no = serializers.CharField()
    out_request_no = serializers.CharField()
    trade_pay = serializers.SerializerMethodField(
        help_text="While the user has not authorised: pass this object to my.tradePay as it is. Else {}."
    )
    expires_at = serializers.DateTimeField()
    expires_in_seconds = serializers.SerializerMethodField(help_text="Time left to capture or release; 0 after.")
    expiring = serializers.SerializerMethodField(help_text="Funds still frozen and the expiry near: act now.")
    authorized_at = serializers.DateTimeField(allow_null=True)
    captures = CaptureOutputSerializer(many=True)
    releases = ReleaseOutputSerializer(many=True)
    created_at = serializers.DateTimeField()

    @extend_schema_field(TradePaySerializer)
    def get_trade_pay(self, pre_authorization) -> dict:
        return selectors.trade_pay_of_preauthorization(pre_authorization)

    def get_expires_in_seconds(self, pre_authorization) -> int:
        return selectors.preauthorization_time_left(pre_authorization)

    def get_expiring(self, pre_authorization) -> bool:
        return selectors.preauthorization_expiring(pre_authorization)


class PreAuthorizationListFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=PreAuthorizationStatus.choices, required=False)
    mini_program = serializers.CharField(max_length=64, required=False)
    reference = serializers.CharField(max_length=64, required=False)
