from rest_framework import serializers


class ApiKeyOwnerSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["isv", "merchant"])
    id = serializers.CharField()


class ApiKeyOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The visible head of the key, to recognise it.")
    status = serializers.ChoiceField(choices=["active", "revoked", "expired"])
    owner = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)

    def get_owner(self, api_key) -> ApiKeyOwnerSerializer:
        if api_key.merchant_id is not None:
            return {"type": "merchant", "id": api_key.merchant.public_id}
        return {"type": "isv", "id": api_key.isv.public_id}


class ApiKeyCreatedSerializer(ApiKeyOutputSerializer):
    secret = serializers.SerializerMethodField(help_text="The key itself. Shown only in this response: store it now.")

    def get_secret(self, api_key) -> str:
        return self.context["secret"]


class ApiKeyCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="What the key is for, e.g. 'production server'.")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, help_text="In the future; none = never.")
