from django.urls import path

from . import views

app_name = "demo"
urlpatterns = [
    path("merchant-webhooks/<str:app_id>", views.merchant_webhook, name="merchant-webhook"),
]
