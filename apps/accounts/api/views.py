from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.accounts import selectors, services
from apps.core.api.schema import paginated
from apps.core.api.views import TenantApiView
from apps.core.tenancy import PrincipalKind

from .serializers import ApiKeyCreatedSerializer, ApiKeyCreateInputSerializer, ApiKeyOutputSerializer


class ApiKeyCollectionApi(TenantApiView):
    """The keys of the tenant the credential acts for: a merchant's, or (ISV key alone) the ISV's own.

    Only ISV keys create or revoke keys (for the ISV, or a merchant named in Merchant-Id): a leaked merchant
    key cannot mint successors that outlive its revocation.
    """

    write_principals = frozenset({PrincipalKind.ISV_KEY})

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
        issued = services.api_key_create_for(principal=self.principal, **data.validated_data)
        body = ApiKeyCreatedSerializer(issued.api_key, context={"secret": issued.secret}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class ApiKeyDetailApi(TenantApiView):
    write_principals = frozenset({PrincipalKind.ISV_KEY})

    @extend_schema(operation_id="api_keys_retrieve", responses=ApiKeyOutputSerializer, tags=["api keys"])
    def get(self, request, key_id: str):
        api_key = selectors.api_key_get(principal=self.principal, key_id=key_id)
        return Response(ApiKeyOutputSerializer(api_key).data)

    @extend_schema(operation_id="api_keys_revoke", responses={200: ApiKeyOutputSerializer}, tags=["api keys"])
    def delete(self, request, key_id: str):
        api_key = selectors.api_key_get(principal=self.principal, key_id=key_id)
        return Response(ApiKeyOutputSerializer(services.api_key_revoke(api_key=api_key)).data)
