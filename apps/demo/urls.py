from django.urls import path

from . import views

app_name = "demo"
urlpatterns = [
    path("", views.index, name="index"),
    path("<slug:app_id>/", views.mini_program, name="mini-program"),
    path("rentals/<public_id:preauthorization_id>/stop", views.RentalStopApi.as_view(), name="rental-stop"),
    path("merchant-webhooks/<str:app_id>", views.merchant_webhook, name="merchant-webhook"),
]
