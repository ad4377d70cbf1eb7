"""The tenant-aware admin: one site, one mixin.

Every model admin inherits ``TenantScopedAdmin``. What a staff member sees — changelists, change views,
foreign-key choices, list filters, search, autocomplete and actions — comes from ``visible_to`` with the
principal that ``PrincipalMiddleware`` put on the request. What they may change comes from their role,
not from hand-assigned Django permissions.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.filters import RelatedFieldListFilter
from django.db import models
from django_otp import user_has_device
from django_otp.admin import OTPAdminAuthenticationForm

from apps.core.tenancy import Principal, PrincipalKind, TenantOwnedModel

ADMIN_PRINCIPALS = frozenset({PrincipalKind.OPERATOR, PrincipalKind.ISV_STAFF, PrincipalKind.MERCHANT_STAFF})


def request_principal(request) -> Principal:
    return getattr(request, "principal", None) or Principal.anonymous()


def scoped_queryset(model: type[models.Model], principal: Principal) -> models.QuerySet:
    """What ``principal`` may see of ``model``: tenant-owned models by scope, others to operators only."""
    if issubclass(model, TenantOwnedModel):
        return model._default_manager.visible_to(principal)
    return model._default_manager.all() if principal.is_operator else model._default_manager.none()


class PlatformLoginForm(OTPAdminAuthenticationForm):
    """User name and password, and the authenticator's code from those who have one (a second factor is
    optional, but required of some roles: apps/accounts/second_factor.py)."""

    def clean(self):
        cleaned = AdminAuthenticationForm.clean(self)
        if user_has_device(self.get_user()):
            self.clean_otp(self.get_user())
        return cleaned


class PlatformAdminSite(admin.AdminSite):
    site_header = "ISV merchant platform"
    site_title = "ISV merchant platform"
    index_title = "Operations"
    login_form = PlatformLoginForm
    login_template = "otp/admin111/login.html"

    def has_permission(self, request) -> bool:
        user = request.user
        return user.is_active and user.is_staff and request_principal(request).kind in ADMIN_PRINCIPALS


class ScopedRelatedFieldListFilter(RelatedFieldListFilter):
    """A related-object filter whose choices are only the objects the viewer may see."""

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin) or ()
        choices = scoped_queryset(field.remote_field.model, request_principal(request))
        return [(obj.pk, str(obj)) for obj in choices.order_by(*ordering)]


class TenantScopedAdmin(admin.ModelAdmin):
    #: Only platform operators see this model at all.
    operator_only: bool = False
    #: What staff with an editing role (owner, admin) may do; viewers and developers only read.
    staff_may: frozenset[str] = frozenset({"change"})
    #: Fields only operators may set; read-only for everyone else.
    operator_only_fields: tuple[str, ...] = ()

    def get_queryset(self, request):
        queryset = scoped_queryset(self.model, request_principal(request))
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def _may_view(self, request) -> bool:
        principal = request_principal(request)
        if principal.is_operator:
            return True
        if principal.acts_for_merchant and self._no_merchant_sees_rows():
            return False
        return not self.operator_only and principal.kind in ADMIN_PRINCIPALS

    def _no_merchant_sees_rows(self) -> bool:
        return issubclass(self.model, TenantOwnedModel) and self.model.tenant_fields.merchant is None

    def _may(self, request, action: str) -> bool:
        principal = request_principal(request)
        if principal.is_operator:
            return True
        return self._may_view(request) and action in self.staff_may and principal.can_edit

    def has_module_permission(self, request) -> bool:
        return self._may_view(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._may_view(request)

    def has_add_permission(self, request) -> bool:
        return self._may(request, "add")

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may(request, "change")

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._may(request, "delete")

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        if request_principal(request).is_operator:
            return readonly
        return readonly + tuple(field for field in self.operator_only_fields if field not in readonly)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs.setdefault("queryset", scoped_queryset(db_field.remote_field.model, request_principal(request)))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs.setdefault("queryset", scoped_queryset(db_field.remote_field.model, request_principal(request)))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_list_filter(self, request):
        scoped = []
        for entry in super().get_list_filter(request):
            field = self._related_field(entry) if isinstance(entry, str) else None
            scoped.append((entry, ScopedRelatedFieldListFilter) if field is not None else entry)
        return scoped

    def _related_field(self, name: str):
        try:
            field = self.model._meta.get_field(name)
        except Exception:
            return None
        return field if field.is_relation and (field.many_to_one or field.one_to_one) else None


class ReadOnlyInline(admin.TabularInline):
    """A scoped, read-only inline: history (events, attempts, captures) shown, never edited."""

    extra = 0
    can_delete = False
    ordering = ("created_at",)

    def get_queryset(self, request):
        return self.model.objects.visible_to(request_principal(request))

    def has_view_permission(self, request, obj=None) -> bool:
        # Whoever may look at the parent sees its history (what the scoped queryset lets through); staff
        # hold no Django model permissions, so the default check would hide it from them.
        return self.admin_site._registry[self.parent_model].has_view_permission(request, obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
