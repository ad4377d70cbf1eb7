from django.contrib import admin, messages

from apps.core.admin import TenantScopedAdmin, request_principal
from apps.core.errors import ApplicationError

from . import selectors, services
from .models import BusinessLicense, Isv, Merchant, Registration, RegistrationEvent, WalletCredential


@admin.register(Isv)
class IsvAdmin(TenantScopedAdmin):
    # Renaming is the operators': a staff rename to a taken name would reveal that another ISV exists.
    operator_only_fields = ("name",)
    change_form_template = "admin/merchants/isv/change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        isv = self.get_object(request, object_id)
        if isv is not None:
            extra_context = {
                **(extra_context or {}),
                "registration_matrix": selectors.registration_matrix(principal=request_principal(request), isv=isv),
            }
        return super().change_view(request, object_id, form_url, extra_context)

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
    fields = (
        "public_id",
        "super_app",
        "isv",
        "merchant",
        "client_id",
        "partner_id",
        "classic_app_id",
        "key_version",
        "public_key_pem",
    )
    readonly_fields = fields
    staff_may = frozenset()


@admin.register(BusinessLicense)
class BusinessLicenseAdmin(TenantScopedAdmin):
    list_display = ("legal_name", "registration_no", "merchant", "expiry_date", "updated_at")
    list_filter = ("business_type", "merchant")
    search_fields = ("legal_name", "registration_no", "public_id")
    list_select_related = ("merchant",)
    ordering = ("legal_name",)
    exclude = ("isv",)
    staff_may = frozenset({"add", "change"})

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return (*readonly, "merchant") if obj is not None else readonly

    def has_change_permission(self, request, obj=None) -> bool:
        # What a super app reviews or verified stays as it was: the change form turns read-only.
        locked = obj is not None and selectors.license_is_locked(merchant=obj.merchant)
        return super().has_change_permission(request, obj) and not locked

    def save_model(self, request, obj, form, change):
        # Through the service: it refuses edits while a super app reviews or has verified the license.
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name != "document"}
        saved = services.business_license_save(
            merchant=obj.merchant, fields=fields, document=form.cleaned_data.get("document")
        )
        obj.pk, obj.public_id = saved.pk, saved.public_id


class RegistrationEventInline(admin.TabularInline):
    model = RegistrationEvent
    fields = ("created_at", "from_status", "to_status", "source", "actor", "reason", "license_changes")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("created_at",)

    def get_queryset(self, request):
        return RegistrationEvent.objects.visible_to(request_principal(request))

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Registration)
class RegistrationAdmin(TenantScopedAdmin):
    """Statuses change only through actions that call the services; nobody edits them by hand."""

    list_display = ("merchant", "super_app", "status", "rejection_reason", "submitted_at", "decided_at")
    list_filter = ("status", "super_app", "merchant")
    search_fields = ("merchant__name", "public_id", "wallet_request_id")
    list_select_related = ("merchant", "super_app")
    ordering = ("merchant__name", "super_app__code")
    readonly_fields = (
        "merchant",
        "super_app",
        "status",
        "rejection_reason",
        "wallet_request_id",
        "submitted_at",
        "decided_at",
    )
    exclude = ("isv", "next_poll_at")
    inlines = (RegistrationEventInline,)
    actions = ("submit_for_verification",)
    staff_may = frozenset({"change"})

    @admin.action(description="Submit (or resubmit) the business license for verification", permissions=["change"])
    def submit_for_verification(self, request, queryset):
        for registration in queryset.select_related("merchant", "super_app"):
            try:
                result = services.registration_submit(
                    merchant=registration.merchant,
                    super_app=registration.super_app,
                    source="staff",
                    actor=f"user:{request.user.pk}",
                )
            except ApplicationError as error:
                self.message_user(request, f"{registration.merchant}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"{registration.merchant}: {result.get_status_display()}", messages.SUCCESS)


@admin.action(description="Start verification at every super app", permissions=["change"])
def verify_everywhere(modeladmin, request, queryset):
    """From the merchant list: submit each merchant's license to every super app with credentials."""
    for merchant in queryset:
        for super_app in selectors.super_app_list():
            try:
                services.registration_submit(
                    merchant=merchant, super_app=super_app, source="staff", actor=f"user:{request.user.pk}"
                )
            except ApplicationError as error:
                modeladmin.message_user(request, f"{merchant} at {super_app}: {error.message}", messages.WARNING)


MerchantAdmin.actions = (verify_everywhere,)
