"""Nothing of one tenant is visible to, or changeable by, another — on every API route and admin page.

Routes and admin pages are discovered from the URL resolver and the admin registry, so whatever is added
later is walked without anyone editing this file. Each attacker is a real credential or login from the
two-ISV world; its victims are every tenant-owned row its principal may not see (derived from the scope
rules themselves, so sibling merchants of one ISV are victims of each other too).
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.cache import cache
from django.core.signals import request_started
from django.db.models import JSONField
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

from apps.accounts.models import User
from apps.accounts.selectors import principal_for_user
from apps.accounts.services import api_key_authenticate
from apps.core.admin import scoped_queryset
from apps.core.tenancy import Principal, TenantOwnedModel
from apps.merchants.models import Isv, Merchant
from apps.miniprograms.models import MiniProgram
from apps.usersessions.services import session_authenticate

pytestmark = pytest.mark.reliability

METHODS = ("get", "post", "put", "patch", "delete")
# Snapshot fields that legitimately change while the walk runs (the attacker's own key use).
VOLATILE_FIELDS = {"last_used_at", "updated_at", "last_login"}


def _tenant_models() -> list[type[TenantOwnedModel]]:
    return [model for model in apps.get_models() if issubclass(model, TenantOwnedModel)]


def _has_public_id(model) -> bool:
    """Rows that never leave the database by themselves (settlement lines) have no public id to probe with."""
    return any(field.name == "public_id" for field in model._meta.concrete_fields)


def _api_routes() -> list[tuple[str, list[str]]]:
    """Every route under /api/v1/ as (route template, names of its path parameters)."""
    found = []

    def walk(patterns, prefix):
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern) and route.startswith("api/v1/"):
                found.append((route, list(entry.pattern.converters)))

    walk(get_resolver().url_patterns, "")
    return found


def _fill(route: str, value: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?\w+>", value, route)


@dataclasses.dataclass
class Victims:
    rows: dict[type, list]
    canaries: set[str]

    def snapshot(self) -> dict:
        return {
            (model.__name__, row.pk): _row_state(model, row.pk)
            for model, objects in self.rows.items()
            for row in objects
        }

    @property
    def public_ids(self) -> list[str]:
        return [row.public_id for objects in self.rows.values() for row in objects if hasattr(row, "public_id")]

    def probes(self, model) -> list:
        """One victim row per owner (ISV, merchant) of ``model``: each kind of foreign object is tried on
        every route without trying every row."""
        seen, chosen = set(), []
        for row in self.rows.get(model, []):
            owner = (getattr(row, "isv_id", row.pk), getattr(row, "merchant_id", row.pk))
            if owner not in seen:
                seen.add(owner)
                chosen.append(row)
        return chosen

    @property
    def probe_ids(self) -> list[str]:
        return [row.public_id for model in self.rows if _has_public_id(model) for row in self.probes(model)]


def _row_state(model, pk):
    # values(), not model_to_dict(): non-editable columns (revoked_at, secret_hash, …) must count too.
    row = model.objects.unscoped().filter(pk=pk).values().first()
    return None if row is None else {k: v for k, v in row.items() if k not in VOLATILE_FIELDS}


#: Fields whose values are a row's canaries (besides its public id, and the ``canary-`` strings in its JSON).
CANARY_FIELDS = (
    "name",
    "prefix",
    "client_id",
    "legal_name",
    "wallet_request_id",
    "app_id",
    "sku",
    "reference",
    "payment_request_id",
    "wallet_payment_id",
    "customer_id",
    "out_order_no",
    "out_request_no",
    "content",
)
#: Free text: the ``canary-`` words in it are canaries (a page may show the text shortened or escaped).
CANARY_TEXT_FIELDS = ("note",)


def _strings_of(row, json_fields: list[str]) -> set[str]:
    strings = {str(getattr(row, field)) for field in CANARY_FIELDS if getattr(row, field, None)}
    for field in CANARY_TEXT_FIELDS:
        strings.update(re.findall(r"canary-[\w-]+", getattr(row, field, None) or ""))
    if getattr(row, "public_id", None):  # settlement lines have none
        strings.add(row.public_id)
    for field in json_fields:  # evidence, headers, snapshots: the canary strings written into them
        strings |= _canary_strings(getattr(row, field))
    return strings


def _victims_of(principal: Principal) -> Victims:
    rows, canaries, shown = {}, set(), set()
    for model in _tenant_models():
        visible = model.objects.visible_to(principal).values_list("pk", flat=True)
        hidden = model.objects.unscoped().exclude(pk__in=list(visible))
        if model is Isv:
            hidden = hidden.exclude(pk=principal.isv_id)  # a merchant's own ISV is its parent, not a victim
        if model is MiniProgram and principal.is_user_session:
            hidden = hidden.exclude(pk=principal.mini_program_id)  # a session's own mini program is its context
        if model is Merchant and principal.is_user_session:
            hidden = hidden.exclude(pk=principal.merchant_id)  # and so is the merchant it buys from
        hidden = list(hidden)
        rows[model] = hidden
        json_fields = [field.name for field in model._meta.concrete_fields if isinstance(field, JSONField)]
        for row in hidden:
            canaries |= _strings_of(row, json_fields)
        for row in model.objects.unscoped().exclude(pk__in=[row.pk for row in hidden]):
            shown |= _strings_of(row, json_fields)
    # A hidden row may repeat what the principal's own rows say (a discrepancy names the merchant's own payment;
    # a webhook event hidden from a buyer, the buyer's order): only what none of its own rows says is a canary.
    return Victims(rows=rows, canaries=canaries - shown)


def _canary_strings(value) -> set[str]:
    """Every string starting with ``canary-`` inside a JSON value."""
    if isinstance(value, str):
        return {value} if value.startswith("canary-") else set()
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return set().union(*(_canary_strings(item) for item in value))
    return set()


def _assert_no_canary(body: str, victims: Victims, where: str, sent: str = "") -> None:
    """No victim's canary in ``body`` — other than an id the attacker sent itself and sees echoed back."""
    if sent:
        body = body.replace(sent, "")
    leaked = sorted(canary for canary in victims.canaries if canary in body)
    assert not leaked, f"{where} shows another tenant's data: {leaked}"


def _api_attackers(world):
    """(label, headers, principal) for every kind of API credential in the world."""
    attackers = []
    for isv in world.isvs:
        attackers.append((f"{isv.isv.name} key", {"HTTP_AUTHORIZATION": f"Bearer {isv.key}"}, None))
        for tenant in isv.merchants:
            attackers.append(
                (
                    f"{isv.isv.name} key for {tenant.merchant.name}",
                    {
                        "HTTP_AUTHORIZATION": f"Bearer {isv.key}",
                        "HTTP_MERCHANT_ID": tenant.merchant.public_id,
                    },
                    None,
                )
            )
            attackers.append((f"{tenant.merchant.name} key", {"HTTP_AUTHORIZATION": f"Bearer {tenant.key}"}, None))
            for role, session in (("buyer", tenant.buyer_session), ("browser", tenant.browser_session)):
                if session:
                    attackers.append(
                        (f"{tenant.merchant.name} {role}", {"HTTP_AUTHORIZATION": f"Bearer {session}"}, None)
                    )
    resolved = []
    for label, headers, _ in attackers:
        secret = headers["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
        if secret.startswith("ust_"):
            principal = session_authenticate(token=secret)
        else:
            principal = api_key_authenticate(secret=secret, merchant_public_id=headers.get("HTTP_MERCHANT_ID"))
        resolved.append((label, headers, principal))
    return resolved


@pytest.fixture
def requests_made() -> list:
    """Every request the test makes, for its figures."""
    made = []

    def count(sender, **kwargs):
        made.append(sender)

    request_started.connect(count)
    yield made
    request_started.disconnect(count)


def test_api_routes_are_discovered():
    routes = dict(_api_routes())
    assert "api/v1/merchant" in routes
    assert routes["api/v1/api-keys/<public_id:key_id>"] == ["key_id"]


# Per ISV: its key, its key naming each of two merchants, each merchant's key, and two user sessions.
API_ATTACKERS = 2 * (1 + 2 + 2 + 2)


def test_every_api_credential_of_the_world_attacks(world):
    assert len(_api_attackers(world)) == API_ATTACKERS


@pytest.mark.parametrize("attacker", range(API_ATTACKERS))  # one test each, so workers share the walk
def test_no_api_route_shows_or_changes_another_tenants_data(world, attacker, figures):
    routes = _api_routes()
    client = Client()
    walked = 0
    label, headers, principal = _api_attackers(world)[attacker]
    victims = _victims_of(principal)
    assert victims.public_ids, f"{label} has no victims: the world fixture is too small"
    before = victims.snapshot()
    for route_number, (route, params) in enumerate(routes):
        cache.clear()  # a fresh rate-limit budget: limits are tested elsewhere, leaks here
        sent_ids = victims.probe_ids if params else [""]
        for sent in sent_ids:
            path = _fill(route, sent)
            for method in METHODS:
                body = "" if method == "get" else json.dumps({"name": f"probe {attacker}-{route_number}"})
                response = client.generic(method.upper(), path, body, "application/json", **headers)
                walked += 1
                where = f"{method.upper()} {path} as {label}"
                assert response.status_code < 500, where
                if params:
                    # 403 only for a method the credential may never use, whatever the object.
                    refused = response.status_code == 403 and (
                        response.json()["error"]["code"] == "auth.principal_not_allowed"
                    )
                    assert response.status_code in (404, 405) or refused, f"{where} answered {response.status_code}"
                _assert_no_canary(response.content.decode(), victims, where, sent)
    assert victims.snapshot() == before, f"{label} changed another tenant's rows"
    assert walked > 100
    figures.record(
        "T-SEC-3 (API walk)",
        f"{label}: {walked} requests over {len(routes)} routes, each answer searched for "
        f"{len(victims.canaries)} foreign canaries, none found; {len(before)} foreign rows unchanged",
    )


def test_a_merchant_id_header_naming_another_isvs_merchant_is_not_found_everywhere(world):
    client = Client()
    stranger = world.b.merchants[0].merchant
    for route, _params in _api_routes():
        if route.startswith("api/v1/schema") or route.startswith("api/v1/docs"):
            continue
        path = _fill(route, "key_" + "0" * 26)
        response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {world.a.key}", HTTP_MERCHANT_ID=stranger.public_id)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "merchants.not_found"


def test_every_detail_route_serves_its_owner(world):
    """The positive control: the ids the walk uses do resolve for the tenant that owns them. A route that
    only writes (cancel) must answer its owner with something other than not-found."""
    client = Client()
    everyone = _api_attackers(world)
    rows = [row for model in _tenant_models() if _has_public_id(model) for row in model.objects.unscoped()]
    for route, params in _api_routes():
        if not params:
            continue
        # Ids of the model the parameter names first (``key_id`` → ApiKey): the search ends early.
        stem = params[-1].removesuffix("_id").replace("_", "")
        public_ids = [row.public_id for row in sorted(rows, key=lambda row: not row._meta.model_name.endswith(stem))]
        view = resolve(_fill(route, public_ids[0])).func.view_class
        if hasattr(view, "get"):
            found = lambda path, headers: client.get(path, **headers).status_code == 200  # noqa: E731
        else:
            found = lambda path, headers: client.post(path, "{}", "application/json", **headers).status_code != 404  # noqa: E731
        served = any(found(_fill(route, public_id), headers) for public_id in public_ids for _, headers, _ in everyone)
        assert served, f"no credential reaches anything through {route}"


# --- admin ---------------------------------------------------------------------------------------


def _admin_attackers(world) -> list[User]:
    return [world.b.staff, world.b.merchants[0].staff, world.a.merchants[1].staff, world.a.staff]


def _admin_urls(model_admin, obj) -> list[str]:
    info = (model_admin.model._meta.app_label, model_admin.model._meta.model_name)
    return [
        reverse("admin:{}_{}_change".format(*info), args=[obj.pk]),
        reverse("admin:{}_{}_history".format(*info), args=[obj.pk]),
        reverse("admin:{}_{}_delete".format(*info), args=[obj.pk]),
    ]


def _autocomplete_urls() -> list[str]:
    urls = []
    for model in admin.site._registry:
        for field in model._meta.get_fields():
            if field.many_to_one and field.concrete and field.remote_field.model in admin.site._registry:
                urls.append(
                    reverse("admin:autocomplete")
                    + f"?app_label={model._meta.app_label}&model_name={model._meta.model_name}"
                    f"&field_name={field.name}&term="
                )
    return urls


def test_every_admin_changelist_renders_canaries_for_operators(world):
    """The positive control: canaries do appear where an operator looks, so their absence means something."""
    client = Client()
    client.force_login(world.operator)
    for model in admin.site._registry:
        if not issubclass(model, TenantOwnedModel):
            continue
        info = (model._meta.app_label, model._meta.model_name)
        body = client.get(reverse("admin:{}_{}_changelist".format(*info))).content.decode()
        # In the table of results: the filters beside it name merchants whatever the rows are.
        start = body.find('<table id="result_list">')  # none when the list is empty
        results = body[start : body.index("</table>", start)] if start >= 0 else ""
        assert "canary-" in results or any(row.public_id in results for row in model.objects.unscoped()), model


def test_no_admin_page_shows_or_changes_another_tenants_data(world, figures, requests_made):
    client = Client()
    canaries = unchanged = 0
    for attacker in _admin_attackers(world):
        client.force_login(attacker)
        victims = _victims_of(principal_for_user(attacker))
        canaries += len(victims.canaries)
        assert victims.public_ids
        before = victims.snapshot()
        users_before = _users()
        for model, model_admin in admin.site._registry.items():
            info = (model._meta.app_label, model._meta.model_name)
            changelist = reverse("admin:{}_{}_changelist".format(*info))
            for query in ("", "?q=canary", "?q=a1", "?all="):
                response = client.get(changelist + query)
                assert response.status_code in (200, 302, 403), f"{changelist}{query} as {attacker}"
                _assert_no_canary(response.content.decode(), victims, f"{changelist}{query} as {attacker}")
            # Forms of the attacker's own objects and the add form render foreign-key choices.
            own = scoped_queryset(model, principal_for_user(attacker)).first()
            forms = [reverse("admin:{}_{}_add".format(*info))]
            if own is not None:
                forms.append(reverse("admin:{}_{}_change".format(*info), args=[own.pk]))
            for url in forms:
                response = client.get(url)
                assert response.status_code in (200, 302, 403), f"GET {url} as {attacker}"
                _assert_no_canary(response.content.decode(), victims, f"GET {url} as {attacker}")
            for obj in victims.probes(model):
                for url in _admin_urls(model_admin, obj):
                    response = client.get(url)
                    assert response.status_code in (302, 403, 404), f"GET {url} as {attacker}"
                    _assert_no_canary(response.content.decode(), victims, f"GET {url} as {attacker}")
                    client.post(url, {"name": "hijacked", "post": "yes", "role": "owner"})
                for action in model_admin.get_actions(_request_for(client, attacker)) or ["delete_selected"]:
                    client.post(changelist, {"action": action, "_selected_action": [obj.pk], "post": "yes"})
        for url in _autocomplete_urls():
            response = client.get(url)
            assert response.status_code in (200, 403, 404), url
            _assert_no_canary(response.content.decode(), victims, f"{url} as {attacker}")
        assert victims.snapshot() == before, f"{attacker} changed another tenant's rows through the admin"
        assert _users() == users_before, f"{attacker} changed users through the admin"
        unchanged += len(before)
        client.logout()
    figures.record(
        "T-SEC-3",
        f"{len(_admin_attackers(world))} staff sign-ins x {len(admin.site._registry)} model admins: "
        f"{len(requests_made)} admin requests (changelists and searches, forms, foreign objects' pages, actions, "
        f"autocomplete), each answer searched for its sign-in's foreign canaries ({canaries} in all), none found; "
        f"{unchanged} foreign rows unchanged",
    )


def _users() -> list[dict]:
    return [{k: v for k, v in row.items() if k not in VOLATILE_FIELDS} for row in User.objects.order_by("pk").values()]


def _request_for(client, user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    request.principal = principal_for_user(user)
    return request


@pytest.mark.parametrize("role_user", ["merchant", "isv"])
def test_staff_cannot_see_the_user_list(world, role_user):
    client = Client()
    client.force_login(world.a.staff if role_user == "isv" else world.a.merchants[0].staff)
    response = client.get(reverse("admin:accounts_user_changelist"))
    assert response.status_code == 403
