from django.urls import path

from . import views

urlpatterns = [
    path("merchant", views.MerchantOverviewApi.as_view(), name="merchant-current"),
    path("mini-programs", views.MiniProgramCollectionApi.as_view(), name="mini-programs"),
    path("mini-programs/<public_id:mini_program_id>", views.MiniProgramDetailApi.as_view(), name="mini-program"),
    path(
        "mini-programs/<public_id:mini_program_id>/features",
        views.MiniProgramFeatureApi.as_view(),
        name="mini-program-features",
    ),
    path(
        "mini-programs/<public_id:mini_program_id>/webhook-secret",
        views.MiniProgramWebhookSecretApi.as_view(),
        name="mini-program-webhook-secret",
    ),
    path("products", views.ProductCollectionApi.as_view(), name="products"),
    path("products/<public_id:product_id>", views.ProductDetailApi.as_view(), name="product"),
]
