from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.core.api.schema import paginated
from apps.core.api.views import TenantApiView
from apps.core.tenancy import PrincipalKind
from apps.merchants import selectors

from .serializers import MerchantOutputSerializer


class MerchantCurrentApi(TenantApiView):
    """The merchant the credential acts for."""

    requires_merchant = True

    @extend_schema(operation_id="merchant_retrieve", responses=MerchantOutputSerializer, tags=["merchants"])
    def get(self, request):
        merchant = selectors.merchant_acting(principal=self.principal)
        return Response(MerchantOutputSerializer(merchant).data)


class MerchantListApi(TenantApiView):
    """An ISV's merchants (ISV keys only)."""

    allowed_principals = frozenset({PrincipalKind.ISV_KEY})

    @extend_schema(operation_id="merchants_list", responses=paginated(MerchantOutputSerializer), tags=["merchants"])
    def get(self, request):
        return self.paginated_response(selectors.merchant_list(principal=self.principal), MerchantOutputSerializer)
