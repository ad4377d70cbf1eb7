from rest_framework import serializers


class IsvSummarySerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    name = serializers.CharField()


class MerchantOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    name = serializers.CharField()
    isv = IsvSummarySerializer()
    created_at = serializers.DateTimeField()
