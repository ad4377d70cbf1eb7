"""The tenant-aware admin: one site, one mixin.

Every model admin inherits ``TenantScopedAdmin``. What a staff member sees — changelists, change views,
foreign-key choices, list filters, search, autocomplete and actions — comes from ``visible_to`` with the
principal that ``PrincipalMiddleware`` put on the request. What they may change comes from their role,
not from hand-assigned Django permissions.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.filters import RelatedFieldListFilter
from django.contrib.admin.forms import AdminAuthenticationForm
from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils.module_loading import import_string
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


def _stored_values(obj: models.Model) -> dict[str, object]:
    """The row's own columns as stored (foreign keys as ids), to compare before and after a change.

    The primary key and ``auto_now`` timestamps are left out: every save changes the latter, so they say
    nothing about what the staff member did.
    """
    return {
        field.name: field.value_from_object(obj)
        for field in obj._meta.concrete_fields
        if not field.primary_key and not getattr(field, "auto_now", False)
    }


def _shown(model: type[models.Model], name: str, value):
    """A stored value as the audit log keeps it: a related object by its name, a file by its path."""
    if value is None:
        return None
    field = model._meta.get_field(name)
    if field.is_relation:
        related = field.related_model._base_manager.filter(pk=value).first()  # the id came from a scoped row
        return str(related) if related is not None else "(deleted)"
    if isinstance(value, FieldFile):
        return value.name
    if isinstance(value, bytes | memoryview):
        return f"({len(value)} bytes)"
    return value


def _changes(model: type[models.Model], before: dict, after: dict) -> dict[str, list]:
    """``{field: [before, after]}`` for the fields that differ; empty and unset count as the same."""
    return {
        name: [_shown(model, name, before.get(name)), _shown(model, name, after.get(name))]
        for name in after.keys() | before.keys()
        if before.get(name) != after.get(name) and not {before.get(name), after.get(name)} <= {None, ""}
    }


class TenantScopedAdmin(admin.ModelAdmin):
    """Scoped to the viewer's tenant, permitted by role, and audited.

    Every add, change, deletion and admin action is handed to the audit recorder named by the
    ``AUDIT_RECORDER`` setting, so no admin class has to remember to record. A dotted path rather than an
    import because the recorder lives in ``accounts``, which depends on ``core``, not the other way round; a
    setting needs no start-up wiring (a registry filled in an ``AppConfig.ready``) and tests can swap it.
    Django's ``LogEntry`` is still written: the admin's history page reads it, and it costs one row.
    """

    #: Only platform operators see this model at all.
    operator_only: bool = False
    #: What staff with an editing role (owner, admin) may do; viewers and developers only read.
    staff_may: frozenset[str] = frozenset({"change"})
    #: Fields only operators may set; read-only for everyone else.
    operator_only_fields: tuple[str, ...] = ()
    #: Evidence and logs: nobody adds, changes or deletes a row here, operators included.
    read_only: bool = False

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
        if self.read_only:
            return False
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

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj._audit_loaded_values = _stored_values(obj)  # compared in log_change after the form saved
        return obj

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        self._audit(request, obj, "add", _changes(type(obj), {}, _stored_values(obj)), entry.get_change_message())
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        text = entry.get_change_message()
        if hasattr(request, "_audit_messages"):  # inside an admin action: it records the object itself
            request._audit_messages[obj.pk] = text
            return entry
        before = getattr(obj, "_audit_loaded_values", None)
        changes = _changes(type(obj), before, _stored_values(obj)) if before is not None else {}
        self._audit(request, obj, "change", changes, text)
        return entry

    def log_deletions(self, request, queryset):
        entries = super().log_deletions(request, queryset)
        for obj in queryset:
            self._audit(request, obj, "delete", _changes(type(obj), _stored_values(obj), {}), "")
        return entries

    def get_actions(self, request):
        return {
            name: (func if name == "delete_selected" else self._audited(func, name, description), name, description)
            for name, (func, _, description) in super().get_actions(request).items()
        }

    def _audited(self, func, name: str, description: str):
        """The action, recording each selected object it changed under the action's name.

        An action that finished (returned no page) is recorded for every selected object, changed or not;
        one that rendered a page (a confirmation, a download, a secret shown once) only for the objects it
        changed or logged, so showing a confirmation page records nothing. Deletions (``delete_selected``)
        are recorded by ``log_deletions``.
        """

        @functools.wraps(func)
        def run(modeladmin, request, queryset):
            selected = {obj.pk: (obj, _stored_values(obj)) for obj in queryset.all()}
            request._audit_messages = {}
            try:
                response = func(modeladmin, request, queryset)
            finally:
                logged = request.__dict__.pop("_audit_messages")
            now = {obj.pk: obj for obj in self.get_queryset(request).filter(pk__in=selected)}
            for pk, (obj, before) in selected.items():
                current = now.get(pk)
                changes = _changes(type(obj), before, _stored_values(current)) if current is not None else {}
                if response is None or changes or pk in logged:
                    self._audit(request, current or obj, name, changes, logged.get(pk) or str(description))
            return response

        return run

    def _audit(self, request, obj, action: str, changes: dict, message: str) -> None:
        recorder = getattr(settings, "AUDIT_RECORDER", None)
        if not recorder:
            return
        import_string(recorder)(
            actor=request.user,
            principal=request_principal(request),
            target=obj,
            action=action,
            changes=changes,
            message=message,
            ip_address=request.META.get("REMOTE_ADDR") or None,
        )

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
