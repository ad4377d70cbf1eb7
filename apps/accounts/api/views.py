from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.accounts import selectors, services
from apps.core.api.schema import paginated
from apps.core.api.views import TenantApiView
from apps.merchants import selectors as merchant_selectors

from .serializers import ApiKeyCreatedSerializer, ApiKeyCreateInputSerializer, ApiKeyOutputSerializer


class ApiKeyCollectionApi(TenantApiView):
    """The keys of the tenant the credential acts for: a merchant's, or (ISV key alone) the ISV's own."""

    @extend_schema(operation_id="api_keys_list", responses=paginated(ApiKeyOutputSerializer), tags=["api keys"])
    def get(self, request):
        return self.paginated_response(selectors.api_key_list(principal=self.principal), ApiKeyOutputSerializer)

    @extend_schema(
        operation_id="api_keys_create",
        request=ApiKeyCreateInputSerializer,
        responses={201: ApiKeyCreatedSerializer},
        tags=["api keys"],
    )
    def post(self, request):
        data = ApiKeyCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.api_key_create(
            isv=merchant_selectors.isv_acting(principal=self.principal),
            merchant=merchant_selectors.merchant_acting(principal=self.principal)
            if self.principal.acts_for_merchant
            else None,
            **data.validated_data,
        )
        body = ApiKeyCreatedSerializer(issued.api_key, context={"secret": issued.secret}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(TenantApiView):
    @extend_schema(operation_id="api_keys_retrieve", responses=ApiKeyOutputSerializer, tags=["api keys"])
    def get(self, request, key_id: str):
        api_key = selectors.api_key_get(principal=self.principal, key_id=key_id)
        return Response(ApiKeyOutputSerializer(api_key).data)

    @extend_schema(operation_id="api_keys_revoke", responses={200: ApiKeyOutputSerializer}, tags=["api keys"])
    def delete(self, request, key_id: str):
        api_key = selectors.api_key_get(principal=self.principal, key_id=key_id)
        return Response(ApiKeyOutputSerializer(services.api_key_revoke(api_key=api_key)).data)
