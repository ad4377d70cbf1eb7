from django.urls import path

from .views import ApiKeyCollectionApi, ApiKeyDetailApi

urlpatterns = [
    path("api-keys", ApiKeyCollectionApi.as_view(), name="api-key-collection"),
    path("api-keys/<public_id:key_id>", ApiKeyDetailApi.as_view(), name="api-key-detail"),
]
