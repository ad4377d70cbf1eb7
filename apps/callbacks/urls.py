from django.urls import path

from . import views

app_name = "callbacks"
urlpatterns = [
    path("<str:callback_token>/payments/notify", views.notify_payment, name="notify-payment"),
]
