from django.contrib import admin

from apps.core.admin import TenantScopedAdmin

from .models import SuperApp


@admin.register(SuperApp)
class SuperAppAdmin(TenantScopedAdmin):
    operator_only = True
    list_display = ("code", "name", "api_version", "gateway_base_url")
    search_fields = ("code", "name")
    ordering = ("code",)
    readonly_fields = ("callback_token", "created_at", "updated_at")
