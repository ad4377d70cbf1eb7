from django.urls import path

from . import views

urlpatterns = [
    path("merchant/license", views.BusinessLicenseApi.as_view(), name="merchant-license"),
    path("merchant/registrations", views.RegistrationCollectionApi.as_view(), name="merchant-registrations"),
    path("merchants", views.MerchantListApi.as_view(), name="merchant-list"),
    path("wallet-credentials", views.WalletCredentialCollectionApi.as_view(), name="wallet-credentials"),
    path("super-apps", views.SuperAppListApi.as_view(), name="super-apps"),
]
