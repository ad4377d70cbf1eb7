from django.contrib import admin

from apps.core.admin import TenantScopedAdmin

from .models import SuperApp, WalletExchange


@admin.register(SuperApp)
class SuperAppAdmin(TenantScopedAdmin):
    operator_only = True
    list_display = ("code", "name", "api_version", "gateway_base_url")
    search_fields = ("code", "name")
    ordering = ("code",)
    readonly_fields = ("callback_token", "created_at", "updated_at")


@admin.register(WalletExchange)
class WalletExchangeAdmin(TenantScopedAdmin):
    """Every wallet call as evidence, for support: read by operators and the tenant's staff, never edited."""

    read_only = True
    list_display = (
        "created_at",
        "operation",
        "subject",
        "merchant",
        "http_status",
        "result_status",
        "result_code",
        "signature_verified",
        "duration_ms",
    )
    list_filter = ("operation", "result_status", "signature_verified")
    search_fields = ("subject", "public_id")
    list_select_related = ("merchant",)
    ordering = ("-created_at",)
    fields = (
        "public_id",
        "created_at",
        "isv",
        "merchant",
        "super_app",
        "credential",
        "operation",
        "subject",
        "http_status",
        "result_status",
        "result_code",
        "signature_verified",
        "error",
        "duration_ms",
        "request_body",
        "response_body",
    )
    readonly_fields = fields
