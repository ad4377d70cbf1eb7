from django.urls import path

from . import views

urlpatterns = [
    path("orders", views.OrderCollectionApi.as_view(), name="orders"),
    path("orders/<public_id:order_id>", views.OrderDetailApi.as_view(), name="order"),
    path("orders/<public_id:order_id>/cancel", views.OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<public_id:order_id>/client-result", views.OrderClientResultApi.as_view(), name="order-client-result"),
    path("orders/<public_id:order_id>/refunds", views.OrderRefundCollectionApi.as_view(), name="order-refunds"),
    path("preauthorizations", views.PreAuthorizationCollectionApi.as_view(), name="preauthorizations"),
    path(
        "preauthorizations/<public_id:preauthorization_id>",
        views.PreAuthorizationDetailApi.as_view(),
        name="preauthorization",
    ),
    path(
        "preauthorizations/<public_id:preauthorization_id>/capture",
        views.PreAuthorizationCaptureApi.as_view(),
        name="preauthorization-capture",
    ),
    path(
        "preauthorizations/<public_id:preauthorization_id>/release",
        views.PreAuthorizationReleaseApi.as_view(),
        name="preauthorization-release",
    ),
]
