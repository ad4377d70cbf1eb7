"""The platform's routes plus the baselines', served by the same process."""

from django.urls import path

from bench.baseline.views import BaselineOrderApi, baseline_notify
from isv_platform import urls as platform_urls

urlpatterns = [
    path("bench/baseline/orders", BaselineOrderApi.as_view()),
    path("bench/baseline/notify", baseline_notify),
    *platform_urls.urlpatterns,
]
handler404, handler500 = platform_urls.handler404, platform_urls.handler500
