from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CoreConfig(AppConfig):
    default = True
    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        from django.urls import register_converter

        from apps.core import rls
        from apps.core.ids import PublicIdConverter

        register_converter(PublicIdConverter, "public_id")
        rls.connect_signals()


class PlatformAdminConfig(admin_apps.AdminConfig):
    """Replaces Django's default admin site with the tenant-aware one."""

    default = False
    default_site = "apps.core.admin.PlatformAdminSite"
