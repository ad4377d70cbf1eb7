from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views import defaults
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.accounts import views as accounts_views
from apps.core import views as core_views
from apps.core.api import errors as api_errors

api_v1 = [
    path("", include("apps.merchants.api.urls")),
    path("", include("apps.accounts.api.urls")),
    path("", include("apps.miniprograms.api.urls")),
    path("", include("apps.payments.api.urls")),
    path("", include("apps.usersessions.api.urls")),
    path("schema/", SpectacularAPIView.as_view(api_version="v1"), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", core_views.metrics_view, name="metrics"),
    path("admin/second-factor/", accounts_views.second_factor_setup, name="second-factor-setup"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("callbacks/", include("apps.callbacks.urls")),
]
if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("apps.sandbox.urls")))
    urlpatterns.append(path("demo/", include("apps.demo.urls")))


def handler404(request, exception):
    if request.path.startswith("/api/"):
        return api_errors.json_not_found()
    return defaults.page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return api_errors.json_server_error()
    return defaults.server_error(request)
