from django.contrib import admin

from apps.core.admin import TenantScopedAdmin, request_principal

from .models import Isv, Merchant, WalletCredential


@admin.register(Isv)
class IsvAdmin(TenantScopedAdmin):
    # Renaming is the operators': a staff rename to a taken name would reveal that another ISV exists.
    operator_only_fields = ("name",)
    ordering = ("name",)
    list_display = ("name", "public_id", "created_at")
    search_fields = ("name", "public_id")
    readonly_fields = ("public_id", "created_at", "updated_at")


@admin.register(Merchant)
class MerchantAdmin(TenantScopedAdmin):
    ordering = ("name",)
    list_display = ("name", "public_id", "isv", "created_at")
    list_filter = ("isv",)
    search_fields = ("name", "public_id")
    readonly_fields = ("public_id", "created_at", "updated_at")
    list_select_related = ("isv",)
    staff_may = frozenset({"add", "change"})

    def has_add_permission(self, request) -> bool:
        # Merchants are onboarded by their ISV (or an operator), never by another merchant.
        return super().has_add_permission(request) and not request_principal(request).acts_for_merchant

    def get_readonly_fields(self, request, obj=None):
        # A merchant never moves between ISVs: that would hand one ISV's data to another.
        readonly = super().get_readonly_fields(request, obj)
        return (*readonly, "isv") if obj is not None else readonly


@admin.register(WalletCredential)
class WalletCredentialAdmin(TenantScopedAdmin):
    """Credentials are created by services (keys generated or uploaded there); staff read the public key."""

    list_display = ("public_id", "client_id", "super_app", "isv", "merchant", "key_version", "created_at")
    list_filter = ("super_app", "isv", "merchant")
    search_fields = ("client_id", "public_id")
    list_select_related = ("super_app", "isv", "merchant")
    ordering = ("-created_at",)
    fields = ("public_id", "super_app", "isv", "merchant", "client_id", "partner_id", "key_version", "public_key_pem")
    readonly_fields = fields
    staff_may = frozenset()
