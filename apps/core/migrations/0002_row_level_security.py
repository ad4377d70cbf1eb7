"""Row-level security on the tenant tables the API and admin read (PostgreSQL only; see apps/core/rls.py)."""

from django.db import migrations

from apps.core import rls


def _protected(apps):
    return [apps.get_model(label) for label in rls.PROTECTED_MODELS]


def protect(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for model in _protected(apps):
        model.tenant_fields = _current(model).tenant_fields  # historical models carry no class attributes
        for statement in rls.policy_sql(model):
            schema_editor.execute(statement)


def unprotect(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for model in _protected(apps):
        for statement in rls.unprotect_sql(model):
            schema_editor.execute(statement)


def _current(model):
    from django.apps import apps as current_apps

    return current_apps.get_model(model._meta.label)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("accounts", "0003_audit_entry"),
        ("merchants", "0005_classic_app_id_unique_per_super_app"),
        ("miniprograms", "0001_initial"),
        ("usersessions", "0001_initial"),
        ("payments", "0006_order_admin_indexes"),
        ("webhooks", "0002_event_order_indexes"),
    ]

    operations = [migrations.RunPython(protect, unprotect, elidable=False)]
