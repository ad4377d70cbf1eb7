from django.urls import path

from .views import MerchantCurrentApi, MerchantListApi

urlpatterns = [
    path("merchant", MerchantCurrentApi.as_view(), name="merchant-current"),
    path("merchants", MerchantListApi.as_view(), name="merchant-list"),
]
