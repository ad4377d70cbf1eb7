from rest_framework import serializers


class SessionCreateInputSerializer(serializers.Serializer):
    app_id = serializers.CharField(max_length=64, help_text="The mini program's appId.")
    auth_code = serializers.CharField(max_length=64, help_text="From my.getAuthCode in the mini program.")
    super_app = serializers.SlugField(
        max_length=40, required=False, help_text="The super app's code; needed only if two super apps share the appId."
    )


class SessionCreatedSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as 'Authorization: Bearer <token>'. Shown once.")
    expires_at = serializers.DateTimeField(source="session.expires_at")
    mini_program = serializers.CharField(source="session.mini_program.app_id")
    user_id = serializers.CharField(source="session.wallet_user.customer_id", help_text="The super app's customerId.")
