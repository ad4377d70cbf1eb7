from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from apps.core.api.schema import error_response, paginated
from apps.core.api.views import TenantApiView
from apps.core.errors import PermissionDeniedError
from apps.core.tenancy import PrincipalKind
from apps.merchants import selectors, services

from .serializers import (
    BusinessLicenseSerializer,
    MerchantCreateInputSerializer,
    MerchantOutputSerializer,
    RegistrationOutputSerializer,
    RegistrationSubmitInputSerializer,
    SuperAppOutputSerializer,
    WalletCredentialCreateInputSerializer,
    WalletCredentialOutputSerializer,
)

ISV_WRITES = frozenset({PrincipalKind.ISV_KEY})


def _actor(principal) -> str:
    return f"api_key:{principal.api_key_id}"


class MerchantListApi(TenantApiView):
    """An ISV's merchants (ISV keys only); POST onboards a new one."""

    allowed_principals = ISV_WRITES

    @extend_schema(operation_id="merchants_list", responses=paginated(MerchantOutputSerializer), tags=["merchants"])
    def get(self, request):
        return self.paginated_response(selectors.merchant_list(principal=self.principal), MerchantOutputSerializer)

    @extend_schema(
        operation_id="merchants_create",
        request=MerchantCreateInputSerializer,
        responses={201: MerchantOutputSerializer},
        tags=["merchants"],
    )
    def post(self, request):
        if self.principal.merchant_id is not None:
            raise PermissionDeniedError(
                "merchants.onboarding_is_isv_level",
                "Onboarding a merchant is the ISV's own act: send the request without Merchant-Id.",
            )
        data = MerchantCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        isv = selectors.isv_acting(principal=self.principal)
        merchant = services.merchant_create(isv=isv, **data.validated_data)
        return Response(MerchantOutputSerializer(merchant).data, status=status.HTTP_201_CREATED)


class BusinessLicenseApi(TenantApiView):
    """The merchant's business license. PUT (multipart) uploads or replaces it while no super app is
    reviewing or has verified it."""

    requires_merchant = True
    write_principals = ISV_WRITES
    parser_classes = [MultiPartParser, FormParser]
    # The document may be large; its limit is checked (400) by the license rules, not by the transport.
    max_body_bytes = 64 * 1024 * 1024

    @extend_schema(operation_id="merchant_license_retrieve", responses=BusinessLicenseSerializer, tags=["onboarding"])
    def get(self, request):
        return Response(BusinessLicenseSerializer(selectors.business_license_get(principal=self.principal)).data)

    @extend_schema(
        operation_id="merchant_license_update",
        request={"multipart/form-data": BusinessLicenseSerializer},
        responses={
            200: BusinessLicenseSerializer,
            409: error_response("A super app is reviewing or has verified the license (`merchants.license_locked`)."),
        },
        tags=["onboarding"],
    )
    def put(self, request):
        data = BusinessLicenseSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        document = fields.pop("document", None)
        merchant = selectors.merchant_acting(principal=self.principal)
        business_license = services.business_license_save(merchant=merchant, fields=fields, document=document)
        return Response(BusinessLicenseSerializer(business_license).data)


class RegistrationCollectionApi(TenantApiView):
    """The verification of the merchant's license at each super app; POST submits (or resubmits) it."""

    requires_merchant = True
    write_principals = ISV_WRITES

    @extend_schema(
        operation_id="merchant_registrations_list",
        responses=RegistrationOutputSerializer(many=True),
        tags=["onboarding"],
    )
    def get(self, request):
        return Response(
            RegistrationOutputSerializer(selectors.registration_list(principal=self.principal), many=True).data
        )

    @extend_schema(
        operation_id="merchant_registrations_submit",
        request=RegistrationSubmitInputSerializer,
        responses={201: RegistrationOutputSerializer},
        tags=["onboarding"],
    )
    def post(self, request):
        data = RegistrationSubmitInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        registration = services.registration_submit(
            merchant=selectors.merchant_acting(principal=self.principal),
            super_app=selectors.super_app_get(code=data.validated_data["super_app"]),
            source="api",
            actor=_actor(self.principal),
        )
        registration = selectors.registration_list(principal=self.principal).get(pk=registration.pk)
        return Response(RegistrationOutputSerializer(registration).data, status=status.HTTP_201_CREATED)


class WalletCredentialCollectionApi(TenantApiView):
    """Credentials for signing requests to super apps: a merchant's (with Merchant-Id) or the ISV's defaults.
    Only the public key ever leaves the platform."""

    write_principals = ISV_WRITES

    @extend_schema(
        operation_id="wallet_credentials_list",
        responses=paginated(WalletCredentialOutputSerializer),
        tags=["onboarding"],
    )
    def get(self, request):
        credentials = selectors.wallet_credential_list(principal=self.principal)
        return self.paginated_response(credentials, WalletCredentialOutputSerializer)

    @extend_schema(
        operation_id="wallet_credentials_create",
        request=WalletCredentialCreateInputSerializer,
        responses={201: WalletCredentialOutputSerializer},
        tags=["onboarding"],
    )
    def post(self, request):
        data = WalletCredentialCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        credential = services.wallet_credential_create(
            isv=selectors.isv_acting(principal=self.principal),
            merchant=selectors.merchant_acting(principal=self.principal) if self.principal.acts_for_merchant else None,
            super_app=selectors.super_app_get(code=fields.pop("super_app")),
            **fields,
        )
        return Response(WalletCredentialOutputSerializer(credential).data, status=status.HTTP_201_CREATED)


class SuperAppListApi(TenantApiView):
    """The super apps the platform connects to."""

    @extend_schema(operation_id="super_apps_list", responses=SuperAppOutputSerializer(many=True), tags=["onboarding"])
    def get(self, request):
        return Response(SuperAppOutputSerializer(selectors.super_app_list(), many=True).data)
