import datetime

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.core.api.schema import paginated
from apps.core.api.views import TenantApiView
from apps.payments import selectors, services

from .serializers import (
    OrderCreatedSerializer,
    OrderCreateInputSerializer,
    OrderListFilterSerializer,
    OrderOutputSerializer,
    RefundCreateInputSerializer,
    RefundOutputSerializer,
)


class OrderCollectionApi(TenantApiView):
    """Orders of the merchant the credential acts for. POST creates one and returns ``trade_pay``."""

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
        responses={201: OrderCreatedSerializer},
        tags=["orders"],
    )
    def post(self, request):
        data = OrderCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        expires_in = fields.get("expires_in")
        created = services.order_create(
            mini_program=selectors.mini_program_for_order(principal=self.principal, app_id=fields["mini_program"]),
            amount=fields["money"],
            description=fields["description"],
            reference=fields.get("reference"),
            metadata=fields.get("metadata"),
            expires_in=datetime.timedelta(seconds=expires_in) if expires_in else None,
        )
        body = OrderCreatedSerializer(created.order, context={"trade_pay": created.trade_pay}).data
        return Response(body, status=status.HTTP_201_CREATED)


class OrderDetailApi(TenantApiView):
    @extend_schema(
        operation_id="orders_retrieve",
        parameters=[OpenApiParameter("refresh", bool, description="Ask the super app first if not final.")],
        responses=OrderOutputSerializer,
        tags=["orders"],
    )
    def get(self, request, order_id: str):
        order = selectors.order_get(principal=self.principal, order_id=order_id)
        if request.query_params.get("refresh") == "true":
            services.order_refresh(order=order)
            order = selectors.order_get(principal=self.principal, order_id=order_id)
        return Response(OrderOutputSerializer(order).data)


class OrderCancelApi(TenantApiView):
    @extend_schema(operation_id="orders_cancel", request=None, responses=OrderOutputSerializer, tags=["orders"])
    def post(self, request, order_id: str):
        order = services.order_cancel(order=selectors.order_get(principal=self.principal, order_id=order_id))
        return Response(
            OrderOutputSerializer(selectors.order_get(principal=self.principal, order_id=order.public_id)).data
        )


class OrderRefundCollectionApi(TenantApiView):
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
