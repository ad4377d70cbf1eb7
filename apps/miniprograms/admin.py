from django import forms
from django.contrib import admin, messages
from django.db import models
from django.template.response import TemplateResponse

from apps.core.admin import TenantScopedAdmin, request_principal, scoped_queryset
from apps.core.money import Money
from apps.superapps.models import SuperApp

from . import services
from .models import Feature, MiniProgram, MiniProgramFeature, Product


class MiniProgramFeatureForm(forms.ModelForm):
    """A feature row: an existing row only switches on or off (payment never off); a new row adds a feature."""

    class Meta:
        model = MiniProgramFeature
        fields = ("feature", "enabled")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["feature"].disabled = True
            self.fields["enabled"].disabled = self.instance.feature == Feature.PAYMENT
        else:
            self.fields["feature"].choices = [
                choice for choice in self.fields["feature"].choices if choice[0] != Feature.PAYMENT
            ]


class MiniProgramFeatureFormSet(forms.BaseInlineFormSet):
    def add_fields(self, form, index) -> None:
        super().add_fields(form, index)
        # Django looks the posted row id up through the default manager, which is tenant-scoped: look it up
        # among this mini program's rows instead, so a forged id of any other row is simply invalid.
        form.fields["id"].queryset = self.instance.features.all()


class MiniProgramFeatureInline(admin.TabularInline):
    """Scoped like its parent; whoever may change the mini program may switch its features."""

    model = MiniProgramFeature
    form = MiniProgramFeatureForm
    formset = MiniProgramFeatureFormSet
    extra = 1
    max_num = len(Feature.choices)
    can_delete = False

    def _parent_admin(self) -> TenantScopedAdmin:
        return self.admin_site._registry[self.parent_model]

    def get_queryset(self, request):
        return scoped_queryset(self.model, request_principal(request)).order_by("feature")

    def has_view_permission(self, request, obj=None) -> bool:
        return self._parent_admin().has_view_permission(request, obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return self._parent_admin().has_change_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._parent_admin().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(MiniProgram)
class MiniProgramAdmin(TenantScopedAdmin):
    """Created and changed through the services: creation adds payment and a webhook secret."""

    ordering = ("-created_at",)
    list_display = ("name", "app_id", "super_app", "status", "trade_pay_mode", "merchant", "created_at")
    list_filter = ("status", "merchant")
    search_fields = ("name", "app_id", "public_id")
    list_select_related = ("super_app", "merchant")
    actions = ("rotate_webhook_secret",)
    staff_may = frozenset({"add", "change"})
    inlines = (MiniProgramFeatureInline,)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fields = (
        "public_id",
        "isv",
        "merchant",
        "super_app",
        "app_id",
        "name",
        "status",
        "trade_pay_mode",
        "default_currency",
        "webhook_url",
        "webhook_secret_rotated_at",
        "created_at",
        "updated_at",
    )
    add_fields = ("merchant", "super_app", "app_id", "name", "trade_pay_mode", "default_currency", "webhook_url")
    readonly_after_creation = (
        *("public_id", "isv", "merchant", "super_app", "app_id", "default_currency"),
        *("webhook_secret_rotated_at", "created_at", "updated_at"),
    )

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return readonly if obj is None else (*readonly, *self.readonly_after_creation)

    def get_inline_instances(self, request, obj=None):
        # Payment comes with creation; other features are added on the change page.
        return super().get_inline_instances(request, obj) if obj is not None else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "super_app":
            # Super apps are shared reference data: every tenant chooses among all of them.
            kwargs["queryset"] = SuperApp.objects.order_by("code")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.mini_program_update(
                mini_program=obj,
                **{field: data[field] for field in ("name", "status", "webhook_url", "trade_pay_mode")},
            )
            return
        created = services.mini_program_create(**{field: data[field] for field in self.add_fields})
        obj.pk = created.mini_program.pk
        obj.refresh_from_db()
        request.created_webhook_secret = created

    def save_formset(self, request, form, formset, change):
        # Features change through ``feature_set`` (its rules, its lock), not through the formset's own save.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for feature_form in formset.forms:
            if not feature_form.has_changed():
                continue
            row = services.feature_set(
                mini_program=formset.instance,
                feature=feature_form.cleaned_data["feature"],
                enabled=feature_form.cleaned_data["enabled"],
            )
            if feature_form.instance.pk is None:
                formset.new_objects.append(row)
            else:
                formset.changed_objects.append((row, feature_form.changed_data))

    def secret_response(self, request, issued: services.MiniProgramWithSecret) -> TemplateResponse:
        """The secret, once, on a page that is not cached; it never goes into a message, cookie or log."""
        context = {
            **self.admin_site.each_context(request),
            "mini_program": issued.mini_program,
            "secret": issued.webhook_secret,
            "opts": self.model._meta,
            "title": "Webhook signing secret",
        }
        # Admin views are never_cache: this page is sent with Cache-Control: no-store.
        return TemplateResponse(request, "admin/miniprograms/miniprogram/webhook_secret.html", context)

    def response_add(self, request, obj, post_url_continue=None):
        return self.secret_response(request, request.created_webhook_secret)

    @admin.action(description="Rotate the webhook signing secret", permissions=["change"])
    def rotate_webhook_secret(self, request, queryset):
        if len(queryset) != 1:
            self.message_user(request, "Select exactly one mini program: its new secret is shown once.", messages.ERROR)
            return None
        return self.secret_response(request, services.mini_program_rotate_webhook_secret(mini_program=queryset[0]))


class ProductForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = ("merchant", "sku", "name", "price", "currency", "active")
        labels = {"price": "Price (minor units)"}


@admin.register(Product)
class ProductAdmin(TenantScopedAdmin):
    """Created and changed through the services; the SKU and currency are fixed at creation."""

    form = ProductForm
    ordering = ("merchant", "sku")
    list_display = ("sku", "name", "price_display", "active", "merchant", "updated_at")
    list_filter = ("active", "merchant")
    search_fields = ("sku", "name", "public_id")
    list_select_related = ("merchant",)
    staff_may = frozenset({"add", "change"})
    readonly_after_creation = ("public_id", "isv", "merchant", "sku", "currency", "created_at", "updated_at")

    def get_fields(self, request, obj=None):
        fields = ProductForm.Meta.fields
        return fields if obj is None else ("public_id", "isv", *fields, "created_at", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return readonly if obj is None else (*readonly, *self.readonly_after_creation)

    @admin.display(description="Price", ordering="price")
    def price_display(self, product: Product) -> str:
        return str(Money(value=product.price, currency=product.currency))

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            price = Money(value=data["price"], currency=obj.currency)
            services.product_update(product=obj, name=data["name"], price=price, active=data["active"])
            return
        created = services.product_create(
            merchant=data["merchant"],
            sku=data["sku"],
            name=data["name"],
            price=Money(value=data["price"], currency=data["currency"]),
            active=data["active"],
        )
        obj.pk = created.pk
        obj.refresh_from_db()
