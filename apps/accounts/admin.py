from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from apps.core.admin import TenantScopedAdmin, request_principal

from . import services
from .models import ApiKey, AuditEntry, Membership, User


@admin.register(User)
class UserAdmin(TenantScopedAdmin, DjangoUserAdmin):
    operator_only = True


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    ordering = ("-created_at",)
    list_display = ("user", "role", "may_refund", "isv", "merchant", "created_at")
    list_filter = ("role", "isv", "merchant")
    search_fields = ("user__username", "user__email")
    list_select_related = ("user", "isv", "merchant")
    readonly_fields = ("public_id", "created_at")
    staff_may = frozenset()


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin):
    ordering = ("-created_at",)
    list_display = ("name", "prefix", "status", "isv", "merchant", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("isv", "merchant")
    search_fields = ("name", "prefix", "public_id")
    list_select_related = ("isv", "merchant")
    readonly_fields = ("public_id", "prefix", "created_by", "last_used_at", "revoked_at", "created_at")
    actions = ("revoke_selected",)
    staff_may = frozenset({"add", "change"})

    def get_exclude(self, request, obj=None):
        # Staff create keys for their own tenant; only operators choose whose key it is.
        principal = request_principal(request)
        if principal.is_operator:
            return ()
        return ("isv", "merchant") if principal.acts_for_merchant else ("isv",)

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return (*readonly, "isv", "merchant") if obj is not None else readonly

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        obj.created_by = request.user
        request.issued_api_key_secret = services.api_key_issue(api_key=obj, issued_by=request_principal(request))

    def response_add(self, request, obj, post_url_continue=None):
        # The secret is rendered once into this response; it never goes into a message, cookie or log.
        context = {
            **self.admin_site.each_context(request),
            "api_key": obj,
            "secret": request.issued_api_key_secret,
            "opts": self.model._meta,
            "title": "API key created",
        }
        return TemplateResponse(request, "admin/accounts/apikey/issued.html", context)

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {len(queryset)} key(s).", messages.SUCCESS)


@admin.register(AuditEntry)
class AuditEntryAdmin(TenantScopedAdmin):
    """The audit log, read-only: operators see all of it, ISV admins what was done to their ISV and its
    merchants. Merchant staff and ISV viewers do not see it: it names who did what across the ISV."""

    read_only = True
    ordering = ("-created_at",)
    list_display = ("created_at", "actor_repr", "actor_role", "action", "target_repr", "merchant")
    list_filter = ("action", "merchant", "created_at")
    search_fields = ("target_repr", "actor_repr")
    list_select_related = ("merchant",)
    fields = (
        "public_id",
        "created_at",
        "actor_repr",
        "actor_role",
        "ip_address",
        "action",
        "target_content_type",
        "target_repr",
        "isv",
        "merchant",
        "message",
        "changes_table",
    )
    readonly_fields = fields
    actions = None
    staff_may = frozenset()

    def _may_view(self, request) -> bool:
        principal = request_principal(request)
        return principal.is_operator or (principal.is_staff and principal.merchant_id is None and principal.can_edit)

    @admin.display(description="Changes")
    def changes_table(self, entry: AuditEntry) -> str:
        if not entry.changes:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            ((field, before, after) for field, (before, after) in sorted(entry.changes.items())),
        )
        return format_html("<table><tr><th>Field</th><th>Before</th><th>After</th></tr>{}</table>", rows)
