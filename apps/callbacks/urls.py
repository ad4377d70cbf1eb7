from django.urls import path

from . import views

app_name = "callbacks"
urlpatterns = [
    path("<str:callback_token>/payments/notify", views.notify_payment, name="notify-payment"),
    path("<str:callback_token>/refunds/notify", views.notify_refund, name="notify-refund"),
    path("<str:callback_token>/merchants/notify-registration", views.notify_registration, name="notify-registration"),
    path("<str:callback_token>/classic/notify", views.notify_classic, name="notify-classic"),
]
