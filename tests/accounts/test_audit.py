"""The audit log: every admin add, change, deletion and action is recorded with its actor and before/after,
secrets never; ISV admins read their own ISV's part of it, operators all of it, nobody changes it."""

import json
import re

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from apps.accounts.models import ApiKey, AuditEntry, Membership
from apps.accounts.services import audit_record
from apps.core.tenancy import Principal, Role
from apps.miniprograms.models import MiniProgram
from tests.factories import MembershipFactory, UserFactory

CHANGELIST = reverse("admin:accounts_auditentry_changelist")


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _entries_about(obj) -> list[AuditEntry]:
    about = AuditEntry.objects.unscoped().filter(
        target_content_type=ContentType.objects.get_for_model(obj), target_object_id=str(obj.pk)
    )
    return list(about.order_by("pk"))


def _results(client: Client, query: str = "") -> str:
    """The table of results of the audit changelist (the search box echoes the query)."""
    body = client.get(CHANGELIST + query).content.decode()
    start = body.find('<table id="result_list">')
    return body[start : body.index("</table>", start)] if start >= 0 else ""


def _rename(client: Client, merchant, name: str):
    return client.post(reverse("admin:merchants_merchant_change", args=[merchant.pk]), {"name": name})


def test_an_isv_admin_renaming_a_merchant_is_recorded_with_before_and_after(world):
    merchant = world.a.merchants[0].merchant
    response = _rename(_login(world.a.staff), merchant, "Renamed A1")
    assert response.status_code == 302
    merchant.refresh_from_db()
    [entry] = _entries_about(merchant)
    assert (entry.action, entry.actor, entry.actor_repr, entry.actor_role) == (
        "change",
        world.a.staff,
        "isv-a-admin",
        "admin",
    )
    assert entry.changes == {"name": ["canary-merchant-a1", "Renamed A1"]}
    assert (entry.isv_id, entry.merchant_id) == (merchant.isv_id, merchant.pk)
    assert entry.ip_address == "127.0.0.1"
    assert "Name" in entry.message


def test_a_membership_change_records_the_role_before_and_after(world):
    membership = Membership.objects.unscoped().get(user=world.a.merchants[0].staff)
    response = _login(world.operator).post(
        reverse("admin:accounts_membership_change", args=[membership.pk]),
        {"user": membership.user_id, "isv": membership.isv_id, "merchant": membership.merchant_id, "role": "viewer"},
    )
    assert response.status_code == 302
    [entry] = _entries_about(membership)
    assert entry.changes == {"role": ["owner", "viewer"]}
    assert (entry.actor, entry.actor_role, entry.merchant_id) == (world.operator, "operator", membership.merchant_id)


def test_an_admin_action_is_recorded_for_each_selected_object(world):
    key = ApiKey.objects.unscoped().get(name="canary-key-a1")
    response = _login(world.a.staff).post(
        reverse("admin:accounts_apikey_changelist"), {"action": "revoke_selected", "_selected_action": [key.pk]}
    )
    assert response.status_code == 302
    key.refresh_from_db()
    [entry] = _entries_about(key)
    assert entry.action == "revoke_selected"
    assert entry.message == "Revoke the selected API keys"
    assert list(entry.changes) == ["revoked_at"]
    assert entry.changes["revoked_at"][0] is None
    assert entry.changes["revoked_at"][1].startswith(key.revoked_at.strftime("%Y-%m-%dT%H:%M:%S."))


def test_a_confirmation_page_of_an_action_records_nothing(world):
    key = ApiKey.objects.unscoped().get(name="canary-key-a1")
    before = AuditEntry.objects.unscoped().count()
    response = _login(world.operator).post(
        reverse("admin:accounts_apikey_changelist"), {"action": "delete_selected", "_selected_action": [key.pk]}
    )
    assert response.status_code == 200  # "Are you sure?"
    assert AuditEntry.objects.unscoped().count() == before


def test_a_deletion_is_recorded_with_what_was_deleted(world):
    membership = MembershipFactory(user=UserFactory(username="leaving"), isv=world.a.isv, role=Role.VIEWER)
    response = _login(world.operator).post(
        reverse("admin:accounts_membership_delete", args=[membership.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    [entry] = AuditEntry.objects.unscoped().filter(action="delete")
    assert entry.target_object_id == str(membership.pk)
    assert entry.changes["role"] == ["viewer", None]
    assert entry.changes["user"] == ["leaving", None]
    assert entry.isv_id == world.a.isv.pk


def test_secrets_never_appear_in_the_recorded_changes(world):
    client = _login(world.a.merchants[0].staff)
    response = client.post(reverse("admin:accounts_apikey_add"), {"name": "audited key"})
    secret = re.search(r'id="api-key-secret"[^>]*>(msk_\w+)<', response.content.decode()).group(1)
    key = ApiKey.objects.unscoped().get(name="audited key")
    [added] = _entries_about(key)
    assert added.action == "add"
    assert added.changes["name"] == [None, "audited key"]
    assert "secret_hash" not in added.changes

    mini_program = MiniProgram.objects.unscoped().get(name="canary-mp-a1")
    response = client.post(
        reverse("admin:miniprograms_miniprogram_changelist"),
        {"action": "rotate_webhook_secret", "_selected_action": [mini_program.pk]},
    )
    webhook_secret = re.search(r"whsec_[A-Za-z0-9+/=]+", response.content.decode()).group(0)
    mini_program.refresh_from_db()
    [rotated] = _entries_about(mini_program)
    assert rotated.action == "rotate_webhook_secret"
    assert "webhook_secret_rotated_at" in rotated.changes
    assert "webhook_secret_ciphertext" not in rotated.changes

    stored = json.dumps([entry.changes for entry in AuditEntry.objects.unscoped()]) + "".join(
        entry.message for entry in AuditEntry.objects.unscoped()
    )
    for leaked in (secret, key.secret_hash, webhook_secret, mini_program.webhook_secret_ciphertext):
        assert leaked not in stored


def test_the_recorder_drops_secret_fields_whoever_calls_it(world):
    entry = audit_record(
        actor=world.operator,
        principal=Principal.operator(user_id=world.operator.pk),
        target=world.a.merchants[0].merchant,
        action="change",
        changes={
            "name": ["x", "y"],
            "password": ["p1", "p2"],
            "private_key_ciphertext": ["c1", "c2"],
            "access_token": ["t1", "t2"],
            "secret_hash": ["h1", "h2"],
        },
    )
    assert entry.changes == {"name": ["x", "y"]}


def test_an_entry_about_a_non_tenant_object_is_the_operators_only(world):
    entry = audit_record(
        actor=world.operator,
        principal=Principal.operator(user_id=world.operator.pk),
        target=world.a.staff,
        action="change",
    )
    assert (entry.isv_id, entry.merchant_id) == (None, None)
    assert _login(world.operator).get(reverse("admin:accounts_auditentry_change", args=[entry.pk])).status_code == 200
    assert _login(world.a.staff).get(reverse("admin:accounts_auditentry_change", args=[entry.pk])).status_code == 302


def _changes_in_both_isvs(world) -> tuple[AuditEntry, AuditEntry]:
    _rename(_login(world.a.staff), world.a.merchants[0].merchant, "audit-canary-a")
    _rename(_login(world.b.staff), world.b.merchants[0].merchant, "audit-canary-b")
    return (
        AuditEntry.objects.unscoped().get(target_repr="audit-canary-a"),
        AuditEntry.objects.unscoped().get(target_repr="audit-canary-b"),
    )


def test_an_isv_admin_sees_their_own_isvs_entries_and_not_another_isvs(world):
    own, other = _changes_in_both_isvs(world)
    client = _login(world.a.staff)
    for query in ("", "?q=audit-canary", "?q=isv-b-admin", "?action__exact=change"):
        results = _results(client, query)
        assert "isv-b-admin" not in results
        assert "audit-canary-b" not in results
    assert "audit-canary-a" in _results(client, "?q=audit-canary")
    own_page = client.get(reverse("admin:accounts_auditentry_change", args=[own.pk]))
    assert own_page.status_code == 200
    assert "canary-merchant-a1" in own_page.content.decode()  # the before of the before/after table
    assert client.get(reverse("admin:accounts_auditentry_change", args=[other.pk])).status_code == 302


def test_operators_see_every_entry(world):
    _changes_in_both_isvs(world)
    results = _results(_login(world.operator))
    assert "audit-canary-a" in results
    assert "audit-canary-b" in results


@pytest.mark.parametrize("role", [Role.VIEWER, Role.DEVELOPER])
def test_isv_viewers_cannot_see_the_audit_log(world, role):
    viewer = MembershipFactory(user=UserFactory(), isv=world.a.isv, role=role).user
    client = _login(viewer)
    assert client.get(CHANGELIST).status_code == 403
    assert "auditentry" not in client.get(reverse("admin:index")).content.decode()


def test_merchant_staff_cannot_see_the_audit_log(world):
    _changes_in_both_isvs(world)
    client = _login(world.a.merchants[0].staff)
    assert client.get(CHANGELIST).status_code == 403
    own = AuditEntry.objects.unscoped().get(target_repr="audit-canary-a")
    assert client.get(reverse("admin:accounts_auditentry_change", args=[own.pk])).status_code in (302, 403)


def test_entries_cannot_be_changed_or_deleted_through_the_admin(world):
    entry, _ = _changes_in_both_isvs(world)
    for user in (world.operator, world.a.staff):
        client = _login(user)
        page = client.get(reverse("admin:accounts_auditentry_change", args=[entry.pk])).content.decode()
        assert 'name="_save"' not in page
        assert "deletelink" not in page
        changed = client.post(
            reverse("admin:accounts_auditentry_change", args=[entry.pk]), {"message": "rewritten", "action": "x"}
        )
        assert changed.status_code == 403
        deleted = client.post(reverse("admin:accounts_auditentry_delete", args=[entry.pk]), {"post": "yes"})
        assert deleted.status_code == 403
        assert client.get(reverse("admin:accounts_auditentry_add")).status_code == 403
    entry.refresh_from_db()
    assert (entry.message, entry.action) != ("rewritten", "x")
    assert AuditEntry.objects.unscoped().filter(pk=entry.pk).exists()


def test_entries_cannot_be_rewritten_through_the_orm(world):
    entry, _ = _changes_in_both_isvs(world)
    entry.message = "rewritten"
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.delete()
    with pytest.raises(TypeError):
        AuditEntry.objects.unscoped().filter(pk=entry.pk).update(message="rewritten")
    with pytest.raises(TypeError):
        AuditEntry.objects.unscoped().filter(pk=entry.pk).delete()
