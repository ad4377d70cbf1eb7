"""Orders, refunds, cancels and pre-authorizations of the merchant a credential acts for.

API keys (a merchant's, or an ISV's naming the merchant) may do everything. A mini program user session
creates orders from the catalogue, sees only its user's orders, cancels them unpaid and reports what
``my.tradePay`` returned; refunds are the merchant's decision and take a key.
"""

import datetime

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.core.api.schema import error_response, paginated
from apps.core.api.views import API_KEY_PRINCIPALS, TenantApiView
from apps.core.tenancy import PrincipalKind
from apps.payments import preauthorizations, selectors, services

from .serializers import (
    CaptureInputSerializer,
    ClientResultInputSerializer,
    OrderCreateInputSerializer,
    OrderListFilterSerializer,
    OrderOutputSerializer,
    PreAuthorizationCreateInputSerializer,
    PreAuthorizationListFilterSerializer,
    PreAuthorizationOutputSerializer,
    RefundCreateInputSerializer,
    RefundOutputSerializer,
    ReleaseInputSerializer,
)

KEYS_AND_SESSIONS = API_KEY_PRINCIPALS | {PrincipalKind.MINI_PROGRAM_USER}

PRE_AUTHORIZATION_CREATE_EXAMPLE = OpenApiExample(
    "Freeze a 500.00 USD deposit for a rental",
    request_only=True,
    value={
        "mini_program": "2021000000000001",
        "amount": 50000,
        "currency": "USD",
        "description": "Scooter rental deposit",
        "reference": "RENT-1042",
        "expires_in": 172800,
    },
)
PRE_AUTHORIZATION_CAPTURE_EXAMPLE = OpenApiExample(
    "The ride cost 12.40 USD: capture it and release the rest",
    request_only=True,
    value={"amount": 1240, "final": True},
)


class OrderApi(TenantApiView):
    allowed_principals = KEYS_AND_SESSIONS

    def order_fields(self, fields: dict) -> dict:
        """What the create services take, from a validated order (or pre-authorization) body."""
        expires_in = fields.get("expires_in")
        return {
            "mini_program": selectors.mini_program_for_order(
                principal=self.principal, app_id=fields.get("mini_program")
            ),
            "amount": fields.get("money"),
            "items": [services.ItemRequest(**item) for item in fields.get("items", [])],
            "currency": fields.get("currency"),
            "description": fields["description"],
            "reference": fields.get("reference"),
            "metadata": fields.get("metadata"),
            "expires_in": datetime.timedelta(seconds=expires_in) if expires_in else None,
            "wallet_user_id": self.principal.wallet_user_id,
        }

    def order_response(self, order_id: str) -> Response:
        """The order as it is stored now."""
        return Response(OrderOutputSerializer(selectors.order_get(principal=self.principal, order_id=order_id)).data)


class OrderCollectionApi(OrderApi):
    """Orders of the merchant the credential acts for (a session's: its user's). POST creates one and
    returns ``trade_pay`` for ``my.tradePay``."""

    requires_merchant = True

    @extend_schema(
        operation_id="orders_list",
        parameters=[OrderListFilterSerializer],
        responses=paginated(OrderOutputSerializer),
        tags=["orders"],
    )
    def get(self, request):
        filters = OrderListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        orders = selectors.order_list(principal=self.principal, **filters.validated_data)
        return self.paginated_response(orders, OrderOutputSerializer)

    @extend_schema(
        operation_id="orders_create",
        request=OrderCreateInputSerializer,
        responses={201: OrderOutputSerializer},
        tags=["orders"],
    )
    def post(self, request):
        data = OrderCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order = services.order_create(**self.order_fields(data.validated_data))
        return Response(OrderOutputSerializer(order).data, status=status.HTTP_201_CREATED)


class OrderDetailApi(OrderApi):
    @extend_schema(
        operation_id="orders_retrieve",
        parameters=[OpenApiParameter("refresh", bool, description="Ask the super app first if not final.")],
        responses=OrderOutputSerializer,
        tags=["orders"],
    )
    def get(self, request, order_id: str):
        if request.query_params.get("refresh") == "true":
            services.order_refresh(order=selectors.order_get(principal=self.principal, order_id=order_id))
        return self.order_response(order_id)


class OrderCancelApi(OrderApi):
    @extend_schema(
        operation_id="orders_cancel",
        request=None,
        responses={
            200: OrderOutputSerializer,
            503: error_response(
                "The super app did not say whether the order was paid (`payments.cancel_outcome_unknown`), or the "
                "database is out of reach; retry."
            ),
        },
        tags=["orders"],
    )
    def post(self, request, order_id: str):
        services.order_cancel(order=selectors.order_get(principal=self.principal, order_id=order_id))
        return self.order_response(order_id)


class OrderClientResultApi(OrderApi):
    """What ``my.tradePay`` returned in the mini program: a hint that may make the platform ask the wallet,
    never a verdict."""

    @extend_schema(
        operation_id="orders_client_result",
        request=ClientResultInputSerializer,
        responses=OrderOutputSerializer,
        tags=["orders"],
    )
    def post(self, request, order_id: str):
        order = selectors.order_get(principal=self.principal, order_id=order_id)
        data = ClientResultInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.order_client_result(order=order, result_code=data.validated_data["result_code"])
        return self.order_response(order_id)


class OrderRefundCollectionApi(OrderApi):
    write_principals = API_KEY_PRINCIPALS

    @extend_schema(operation_id="order_refunds_list", responses=RefundOutputSerializer(many=True), tags=["orders"])
    def get(self, request, order_id: str):
        order = selectors.order_get(principal=self.principal, order_id=order_id)
        return Response(
            RefundOutputSerializer(selectors.refund_list(principal=self.principal, order=order), many=True).data
        )

    @extend_schema(
        operation_id="order_refunds_create",
        request=RefundCreateInputSerializer,
        responses={201: RefundOutputSerializer},
        tags=["orders"],
    )
    def post(self, request, order_id: str):
        data = RefundCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order = selectors.order_get(principal=self.principal, order_id=order_id)
        refund = services.refund_request(order=order, **data.validated_data)
        return Response(RefundOutputSerializer(refund).data, status=status.HTTP_201_CREATED)


class PreAuthorizationApi(OrderApi):
    """Pre-authorizations: keys create, capture and release; a user session creates them from the catalogue
    (a deposit priced by the platform) and reads its own."""

    def preauthorization_response(self, preauthorization_id: str, status_code: int = status.HTTP_200_OK) -> Response:
        pre_authorization = selectors.preauthorization_get(
            principal=self.principal, preauthorization_id=preauthorization_id
        )
        return Response(PreAuthorizationOutputSerializer(pre_authorization).data, status=status_code)


class PreAuthorizationCollectionApi(PreAuthorizationApi):
    """Freeze now, capture the final amount later. POST returns ``trade_pay`` for ``my.tradePay``; the mini
    program must have the ``pre_authorization`` feature."""

    requires_merchant = True

    @extend_schema(
        operation_id="preauthorizations_list",
        parameters=[PreAuthorizationListFilterSerializer],
        responses=paginated(PreAuthorizationOutputSerializer),
        tags=["pre-authorizations"],
    )
    def get(self, request):
        filters = PreAuthorizationListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        pre_authorizations = selectors.preauthorization_list(principal=self.principal, **filters.validated_data)
        return self.paginated_response(pre_authorizations, PreAuthorizationOutputSerializer)

    @extend_schema(
        operation_id="preauthorizations_create",
        request=PreAuthorizationCreateInputSerializer,
        responses={201: PreAuthorizationOutputSerializer},
        tags=["pre-authorizations"],
        examples=[PRE_AUTHORIZATION_CREATE_EXAMPLE],
    )
    def post(self, request):
        data = PreAuthorizationCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = preauthorizations.preauthorization_create(**self.order_fields(data.validated_data))
        return self.preauthorization_response(created.public_id, status.HTTP_201_CREATED)


class PreAuthorizationDetailApi(PreAuthorizationApi):
    @extend_schema(
        operation_id="preauthorizations_retrieve",
        parameters=[OpenApiParameter("refresh", bool, description="Ask the super app first if not final.")],
        responses=PreAuthorizationOutputSerializer,
        tags=["pre-authorizations"],
    )
    def get(self, request, preauthorization_id: str):
        if request.query_params.get("refresh") == "true":
            preauthorizations.preauthorization_refresh(
                pre_authorization=selectors.preauthorization_get(
                    principal=self.principal, preauthorization_id=preauthorization_id
                )
            )
        return self.preauthorization_response(preauthorization_id)


class PreAuthorizationCaptureApi(PreAuthorizationApi):
    """Capture part or all of the frozen funds; each capture is a payment of the order."""

    allowed_principals = API_KEY_PRINCIPALS

    @extend_schema(
        operation_id="preauthorizations_capture",
        request=CaptureInputSerializer,
        responses=PreAuthorizationOutputSerializer,
        tags=["pre-authorizations"],
        examples=[PRE_AUTHORIZATION_CAPTURE_EXAMPLE],
    )
    def post(self, request, preauthorization_id: str):
        pre_authorization = selectors.preauthorization_get(
            principal=self.principal, preauthorization_id=preauthorization_id
        )
        data = CaptureInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        preauthorizations.preauthorization_capture(pre_authorization=pre_authorization, **data.validated_data)
        return self.preauthorization_response(preauthorization_id)


class PreAuthorizationReleaseApi(PreAuthorizationApi):
    """Give all or part of what is still frozen back to the user."""

    allowed_principals = API_KEY_PRINCIPALS

    @extend_schema(
        operation_id="preauthorizations_release",
        request=ReleaseInputSerializer,
        responses=PreAuthorizationOutputSerializer,
        tags=["pre-authorizations"],
    )
    def post(self, request, preauthorization_id: str):
        pre_authorization = selectors.preauthorization_get(
            principal=self.principal, preauthorization_id=preauthorization_id
        )
        data = ReleaseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        preauthorizations.preauthorization_release(pre_authorization=pre_authorization, **data.validated_data)
        return self.preauthorization_response(preauthorization_id)
