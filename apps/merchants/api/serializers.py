from rest_framework import serializers

from apps.merchants.models import BusinessType, RegistrationType


class IsvSummarySerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    name = serializers.CharField()


class WalletCredentialOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    super_app = serializers.CharField(source="super_app.code")
    client_id = serializers.CharField()
    partner_id = serializers.CharField()
    classic_app_id = serializers.CharField(help_text="The classic gateway's app_id (orderStr), if any.")
    key_version = serializers.CharField()
    public_key_pem = serializers.CharField(help_text="Register this public key with the super app.")
    owner = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_owner(self, credential) -> str:
        return "merchant" if credential.merchant_id else "isv"


class RegistrationEventSerializer(serializers.Serializer):
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    source = serializers.CharField()
    reason = serializers.CharField()
    license_changes = serializers.DictField()
    at = serializers.DateTimeField(source="created_at")


class RegistrationOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    super_app = serializers.CharField(source="super_app.code")
    status = serializers.CharField()
    rejection_reason = serializers.CharField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    events = RegistrationEventSerializer(many=True)


class MerchantOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    name = serializers.CharField()
    isv = IsvSummarySerializer()
    created_at = serializers.DateTimeField()


class MerchantDetailOutputSerializer(MerchantOutputSerializer):
    license_status = serializers.SerializerMethodField()
    registrations = serializers.SerializerMethodField()
    wallet_credentials = serializers.SerializerMethodField()

    def get_license_status(self, merchant) -> str:
        return "on_file" if self.context["has_license"] else "missing"

    def get_registrations(self, merchant) -> RegistrationOutputSerializer(many=True):
        return RegistrationOutputSerializer(self.context["registrations"], many=True).data

    def get_wallet_credentials(self, merchant) -> WalletCredentialOutputSerializer(many=True):
        return WalletCredentialOutputSerializer(self.context["wallet_credentials"], many=True).data


class MerchantCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)


class BusinessLicenseSerializer(serializers.Serializer):
    """Input (multipart, with the scanned ``document``) and output of the business license."""

    id = serializers.CharField(source="public_id", read_only=True)
    legal_name = serializers.CharField(max_length=200)
    registration_no = serializers.CharField(max_length=64)
    registration_type = serializers.ChoiceField(choices=RegistrationType.choices)
    business_type = serializers.ChoiceField(choices=BusinessType.choices)
    address_country = serializers.CharField(max_length=2, help_text="ISO 3166-1 alpha-2, e.g. PH")
    address_city = serializers.CharField(max_length=100)
    address_line = serializers.CharField(max_length=300)
    effective_date = serializers.DateField()
    expiry_date = serializers.DateField()
    contact_name = serializers.CharField(max_length=200)
    contact_email = serializers.EmailField()
    contact_phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    document = serializers.FileField(write_only=True, required=False, help_text="PDF, PNG or JPEG; required first.")
    has_document = serializers.SerializerMethodField()

    def get_has_document(self, business_license) -> bool:
        return bool(business_license.document)


class RegistrationSubmitInputSerializer(serializers.Serializer):
    super_app = serializers.CharField(max_length=40, help_text="The super app's code, e.g. 'sandbox'.")


class SuperAppOutputSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    api_version = serializers.CharField()
    trade_pay_modes = serializers.ListField(child=serializers.CharField())


class WalletCredentialCreateInputSerializer(serializers.Serializer):
    super_app = serializers.CharField(max_length=40)
    client_id = serializers.CharField(max_length=128)
    partner_id = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    classic_app_id = serializers.RegexField(
        r"^[A-Za-z0-9_-]{1,32}$",
        required=False,
        default="",
        help_text="The classic gateway's app_id, for orderStr mini programs.",
    )
    key_version = serializers.RegexField(r"^[0-9]{1,8}$", required=False, default="1")
    private_key_pem = serializers.CharField(
        required=False, write_only=True, max_length=8000, help_text="Omit to have the platform generate the key pair."
    )
