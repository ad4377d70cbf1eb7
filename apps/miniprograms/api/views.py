"""Mini programs, their features and the product catalogue of the merchant a credential acts for.

Merchant keys read; ISV keys write. Collections belong to one merchant, so an ISV key names it in
``Merchant-Id``. A route with an object's id in its path is resolved within the credential's scope — the id
names the merchant, so ``Merchant-Id`` is optional there (with it, the scope narrows to that merchant). The
object is always fetched before the body is read: another tenant's object is a 404, never a 400.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.core.api.schema import error_response, paginated
from apps.core.api.views import API_KEY_PRINCIPALS, TenantApiView
from apps.core.tenancy import PrincipalKind
from apps.merchants import selectors as merchant_selectors
from apps.merchants.selectors import merchant_acting
from apps.miniprograms import selectors, services
from apps.miniprograms.models import Feature

from .serializers import (
    FeatureOutputSerializer,
    FeatureSetInputSerializer,
    MerchantOverviewSerializer,
    MiniProgramCreatedSerializer,
    MiniProgramCreateInputSerializer,
    MiniProgramFilterSerializer,
    MiniProgramOutputSerializer,
    MiniProgramUpdateInputSerializer,
    ProductCreateInputSerializer,
    ProductFilterSerializer,
    ProductOutputSerializer,
    ProductUpdateInputSerializer,
    WebhookSecretOutputSerializer,
    WebhookSecretRotatedSerializer,
)

ISV_KEY_WRITES = frozenset({PrincipalKind.ISV_KEY})
# A mini program's users browse the catalogue with their session.
CATALOGUE_READERS = API_KEY_PRINCIPALS | {PrincipalKind.MINI_PROGRAM_USER}
NO_STORE = {"Cache-Control": "no-store"}
CONFLICT = error_response("The appId or SKU is taken.")


def _parse(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _feature_states(mini_program) -> list[dict]:
    enabled = {row.feature for row in mini_program.features.all() if row.enabled}
    return [{"feature": feature, "enabled": feature in enabled} for feature in Feature.values]


class MiniProgramCollectionApi(TenantApiView):
    write_principals = ISV_KEY_WRITES
    requires_merchant = True

    @extend_schema(
        operation_id="mini_programs_list",
        parameters=[MiniProgramFilterSerializer],
        responses=paginated(MiniProgramOutputSerializer),
        tags=["mini programs"],
    )
    def get(self, request):
        filters = _parse(MiniProgramFilterSerializer, request.query_params)
        mini_programs = selectors.mini_program_list(principal=self.principal, **filters)
        return self.paginated_response(mini_programs, MiniProgramOutputSerializer)

    @extend_schema(
        operation_id="mini_programs_create",
        request=MiniProgramCreateInputSerializer,
        responses={201: MiniProgramCreatedSerializer, 409: CONFLICT},
        tags=["mini programs"],
    )
    def post(self, request):
        data = _parse(MiniProgramCreateInputSerializer, request.data)
        created = services.mini_program_create(merchant=merchant_acting(principal=self.principal), **data)
        body = MiniProgramCreatedSerializer(created.mini_program, context={"webhook_secret": created.webhook_secret})
        return Response(body.data, status=status.HTTP_201_CREATED, headers=NO_STORE)


class MiniProgramDetailApi(TenantApiView):
    write_principals = ISV_KEY_WRITES

    @extend_schema(operation_id="mini_programs_retrieve", responses=MiniProgramOutputSerializer, tags=["mini programs"])
    def get(self, request, mini_program_id: str):
        mini_program = selectors.mini_program_get(principal=self.principal, mini_program_id=mini_program_id)
        return Response(MiniProgramOutputSerializer(mini_program).data)

    @extend_schema(
        operation_id="mini_programs_update",
        request=MiniProgramUpdateInputSerializer,
        responses=MiniProgramOutputSerializer,
        tags=["mini programs"],
    )
    def patch(self, request, mini_program_id: str):
        mini_program = selectors.mini_program_get(principal=self.principal, mini_program_id=mini_program_id)
        data = _parse(MiniProgramUpdateInputSerializer, request.data)
        updated = services.mini_program_update(mini_program=mini_program, **data)
        return Response(MiniProgramOutputSerializer(updated).data)


class MiniProgramFeatureApi(TenantApiView):
    """Every feature of a mini program, on or off. Payment is on from creation and stays on."""

    write_principals = ISV_KEY_WRITES

    @extend_schema(
        operation_id="mini_program_features_list",
        responses=FeatureOutputSerializer(many=True),
        tags=["mini programs"],
    )
    def get(self, request, mini_program_id: str):
        mini_program = selectors.mini_program_get(principal=self.principal, mini_program_id=mini_program_id)
        return Response(FeatureOutputSerializer(_feature_states(mini_program), many=True).data)

    @extend_schema(
        operation_id="mini_program_features_set",
        request=FeatureSetInputSerializer,
        responses=FeatureOutputSerializer(many=True),
        tags=["mini programs"],
    )
    def post(self, request, mini_program_id: str):
        mini_program = selectors.mini_program_get(principal=self.principal, mini_program_id=mini_program_id)
        data = _parse(FeatureSetInputSerializer, request.data)
        services.feature_set(mini_program=mini_program, **data)
        return Response(FeatureOutputSerializer(_feature_states(mini_program), many=True).data)


class MiniProgramWebhookSecretApi(TenantApiView):
    """The secret that signs a mini program's webhooks: when it was made, and (POST) a new one, shown once."""

    write_principals = ISV_KEY_WRITES

    @extend_schema(
        operation_id="mini_program_webhook_secret_retrieve",
        responses=WebhookSecretOutputSerializer,
        tags=["mini programs"],
    )
    def get(self, request, mini_program_id: str):
        mini_program = selectors.mini_program_get(principal=self.principal, mini_program_id=mini_program_id)
        return Response(WebhookSecretOutputSerializer(mini_program).data)

    @extend_schema(
        operation_id="mini_program_webhook_secret_rotate",
        request=None,
        responses=WebhookSecretRotatedSerializer,
        tags=["mini programs"],
    )
    def post(self, request, mini_program_id: str):
        mini_program = selectors.mini_program_get(principal=self.principal, mini_program_id=mini_program_id)
        rotated = services.mini_program_rotate_webhook_secret(mini_program=mini_program)
        body = WebhookSecretRotatedSerializer(rotated.mini_program, context={"webhook_secret": rotated.webhook_secret})
        return Response(body.data, headers=NO_STORE)


class ProductCollectionApi(TenantApiView):
    """The merchant's catalogue: a mini program orders by SKU, and the price comes from here."""

    allowed_principals = CATALOGUE_READERS
    write_principals = ISV_KEY_WRITES
    requires_merchant = True

    @extend_schema(
        operation_id="products_list",
        parameters=[ProductFilterSerializer],
        responses=paginated(ProductOutputSerializer),
        tags=["products"],
    )
    def get(self, request):
        filters = _parse(ProductFilterSerializer, request.query_params)
        products = selectors.product_list(principal=self.principal, **filters)
        return self.paginated_response(products, ProductOutputSerializer)

    @extend_schema(
        operation_id="products_create",
        request=ProductCreateInputSerializer,
        responses={201: ProductOutputSerializer, 409: CONFLICT},
        tags=["products"],
    )
    def post(self, request):
        data = _parse(ProductCreateInputSerializer, request.data)
        product = services.product_create(merchant=merchant_acting(principal=self.principal), **data)
        return Response(ProductOutputSerializer(product).data, status=status.HTTP_201_CREATED)


class ProductDetailApi(TenantApiView):
    allowed_principals = CATALOGUE_READERS
    write_principals = ISV_KEY_WRITES

    @extend_schema(operation_id="products_retrieve", responses=ProductOutputSerializer, tags=["products"])
    def get(self, request, product_id: str):
        product = selectors.product_get(principal=self.principal, product_id=product_id)
        return Response(ProductOutputSerializer(product).data)

    @extend_schema(
        operation_id="products_update",
        request=ProductUpdateInputSerializer,
        responses=ProductOutputSerializer,
        tags=["products"],
    )
    def patch(self, request, product_id: str):
        product = selectors.product_get(principal=self.principal, product_id=product_id)
        data = _parse(ProductUpdateInputSerializer, request.data)
        return Response(ProductOutputSerializer(services.product_update(product=product, **data)).data)


class MerchantOverviewApi(TenantApiView):
    """The merchant the credential acts for: its license status, registrations per super app, wallet
    credentials (public keys) and mini programs. Served here, above both apps it draws on."""

    requires_merchant = True

    @extend_schema(operation_id="merchant_retrieve", responses=MerchantOverviewSerializer, tags=["merchants"])
    def get(self, request):
        merchant = merchant_selectors.merchant_acting(principal=self.principal)
        context = {
            "registrations": merchant_selectors.registration_list(principal=self.principal),
            "wallet_credentials": merchant_selectors.wallet_credential_list(principal=self.principal),
            "has_license": merchant_selectors.business_license_of(merchant=merchant) is not None,
            "mini_programs": selectors.mini_program_list(principal=self.principal),
        }
        return Response(MerchantOverviewSerializer(merchant, context=context).data)
