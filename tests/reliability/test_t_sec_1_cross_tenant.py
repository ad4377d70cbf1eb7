"""T-SEC-1: randomized cross-tenant requests. Five ISVs of three merchants; every credential of theirs
(ISV keys, with and without ``Merchant-Id``, merchant keys, user sessions) sends requests drawn at random —
route and method from the URL resolver, another tenant's object id — and the answers must never show or
change another tenant's data, nor be a 5xx. Seeded: a failure names its seed and draw, and replays.

The tenancy layers are independent: the suite still holds with each one switched off in turn — L0 the API's
principal gates, L1 the ORM's scoping, L2 PostgreSQL's row-level security — and fails with all of them off.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.test import Client

from apps.core import rls
from apps.core.api.views import TenantApiView
from apps.core.tenancy import PrincipalKind, TenantOwnedModel, TenantScopedQuerySet
from tests.conftest import NIGHTLY
from tests.test_isolation import METHODS, Victims, _api_attackers, _api_routes, _fill, _row_state, _victims_of

pytestmark = pytest.mark.reliability

SEED = int(os.environ.get("T_SEC_1_SEED", "20261122"))
FULL_RUN = 10_000 if not NIGHTLY else 50_000
LAYER_RUN = 2_500 if not NIGHTLY else 10_000


@dataclasses.dataclass
class Outcome:
    requests: int = 0
    leaks: list[str] = dataclasses.field(default_factory=list)
    server_errors: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Crowd:
    isvs: list


def _every_tenant_row() -> dict:
    from django.apps import apps

    return {
        (model.__name__, pk): _row_state(model, pk)
        for model in apps.get_models()
        if issubclass(model, TenantOwnedModel)
        for pk in model.objects.unscoped().values_list("pk", flat=True)
    }


def _attack(crowd, *, count: int, seed: int, switch_off: Callable[[], None] = lambda: None) -> Outcome:
    """``count`` random requests; a leak is another tenant's canary in an answer, a foreign object answered
    other than 404/405/403-not-allowed, or any row that existed before and changed.

    Who may see what is worked out before ``switch_off`` disables any layer, so the victims stay the truth."""
    rng = random.Random(seed)  # noqa: S311 - replayable draws, not a secret
    attackers = _api_attackers(Crowd(crowd))
    routes = _api_routes()
    victims: dict[int, Victims] = {number: _victims_of(principal) for number, (_, _, principal) in enumerate(attackers)}
    client = Client(raise_request_exception=False)  # a 5xx is counted and reported, not raised mid-run
    outcome = Outcome()
    before = _every_tenant_row()
    switch_off()
    for draw in range(count):
        number = rng.randrange(len(attackers))
        label, headers, _ = attackers[number]
        route, params = rng.choice(routes)
        method = rng.choice(METHODS)
        sent = rng.choice(victims[number].probe_ids) if params else ""
        path = _fill(route, sent)
        body = "" if method == "get" else json.dumps({"name": f"t-sec-1 {draw}", "amount": rng.randint(1, 10**6)})
        if draw % 200 == 0:
            cache.clear()  # rate limits are T-SEC-6's; here every request must reach the view
        response = client.generic(method.upper(), path, body, "application/json", **headers)
        outcome.requests += 1
        where = f"seed {seed} draw {draw}: {method.upper()} {path} as {label} -> {response.status_code}"
        if response.status_code >= 500:
            outcome.server_errors.append(where)
            continue
        if params and response.status_code not in (404, 405):
            refused = response.status_code == 403 and response.json()["error"]["code"] == "auth.principal_not_allowed"
            if not refused:
                outcome.leaks.append(f"{where}: a foreign object answered")
        text = response.content.decode(errors="replace").replace(sent, "") if sent else response.content.decode()
        shown = sorted(canary for canary in victims[number].canaries if canary in text)
        if shown:
            outcome.leaks.append(f"{where}: shows {shown[:3]}")
    after = _every_tenant_row()
    changed = [key for key, state in before.items() if after.get(key) != state]
    outcome.leaks.extend(f"seed {seed}: row {key} changed" for key in changed)
    return outcome


def _all_layers_on(crowd, figures) -> Outcome:
    outcome = _attack(crowd, count=FULL_RUN, seed=SEED)
    figures.record(
        "T-SEC-1",
        f"{outcome.requests} requests, {len(outcome.leaks)} leaks, {len(outcome.server_errors)} 5xx "
        f"(5 ISVs x 3 merchants, {len(_api_routes())} routes, seed {SEED})",
    )
    return outcome


def test_t_sec_1_random_requests_never_reach_another_tenant(crowd, figures):
    outcome = _all_layers_on(crowd, figures)
    assert outcome.requests == FULL_RUN
    assert not outcome.leaks, outcome.leaks[:10]
    assert not outcome.server_errors, outcome.server_errors[:10]


# --- the layers, each switched off in turn ----------------------------------------------------------


def _without_api_gates(monkeypatch) -> None:
    """L0 off: every view takes every kind of principal, and no ISV key need name its merchant."""
    everyone = frozenset(PrincipalKind)
    pending = [TenantApiView]
    while pending:
        view = pending.pop()
        pending.extend(view.__subclasses__())
        monkeypatch.setattr(view, "allowed_principals", everyone)
        monkeypatch.setattr(view, "write_principals", None)
        monkeypatch.setattr(view, "requires_merchant", False)


def _without_orm_scoping(monkeypatch) -> None:
    """L1 off: ``visible_to`` returns every tenant's rows (without the named bypass ``unscoped`` carries)."""
    monkeypatch.setattr(TenantScopedQuerySet, "visible_to", lambda self, principal: self._scoped())


def _without_row_level_security(monkeypatch) -> None:
    """L2 off: every transaction runs under a bypass, as if PostgreSQL had no policies."""
    monkeypatch.setattr(rls, "current", lambda: rls.DbScope(bypass="T-SEC-1: row-level security off"))


LAYERS = {
    "L0 API gates": _without_api_gates,
    "L1 ORM scoping": _without_orm_scoping,
    "L2 row-level security": _without_row_level_security,
}


@pytest.mark.postgres  # the layer below the ORM exists on PostgreSQL only
@pytest.mark.parametrize("layer", list(LAYERS))
def test_t_sec_1_holds_with_one_layer_off(crowd, figures, monkeypatch, layer):
    outcome = _attack(crowd, count=LAYER_RUN, seed=SEED + 1, switch_off=lambda: LAYERS[layer](monkeypatch))
    figures.record(
        "T-SEC-1",
        f"{layer} off: {outcome.requests} requests, {len(outcome.leaks)} leaks, {len(outcome.server_errors)} 5xx",
    )
    assert not outcome.leaks, outcome.leaks[:10]


@pytest.mark.postgres
def test_t_sec_1_fails_with_every_layer_off(crowd, figures, monkeypatch):
    """The suite has teeth: with nothing between the tenants, the same draws find leaks."""

    def every_layer_off() -> None:
        for switch_off in LAYERS.values():
            switch_off(monkeypatch)

    outcome = _attack(crowd, count=LAYER_RUN // 5, seed=SEED + 1, switch_off=every_layer_off)
    figures.record("T-SEC-1", f"every layer off: {outcome.requests} requests, {len(outcome.leaks)} leaks found")
    assert len(outcome.leaks) > 0
