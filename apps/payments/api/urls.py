from django.urls import path

from . import views

urlpatterns = [
    path("orders", views.OrderCollectionApi.as_view(), name="orders"),
    path("orders/<public_id:order_id>", views.OrderDetailApi.as_view(), name="order"),
]
