"""Schemathesis over the platform's own OpenAPI schema, for T-SEC-5.

Every operation of ``/api/v1/schema/`` gets generated requests in both of schemathesis' generation modes —
*positive* (what the schema allows) and *negative* (what it forbids) — sent in-process to the WSGI
application with real credentials. A request mostly carries a credential the operation serves (read from its
Django view), a real object's id in its path and real references in its body, so that it gets past the
gatekeeping into the serializers, services and the wallet; the rest try the others. Each answer must not be
a 5xx and must be what the schema documents for the operation: a documented status code, content type and
body.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from typing import Any

import schemathesis
from django.core.cache import cache
from django.urls import resolve
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.core.tenancy import PrincipalKind
from isv_platform.wsgi import application
from tests.reliability.fuzz_notifications import ODD_TEXT

SCHEMA_PATH = "/api/v1/schema/?format=json"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
_PATH_PARAMETER = re.compile(r"\{[^}]+\}")
_A_PUBLIC_ID = "xx_" + "0" * 26  # matches the public-id route converter, to find an operation's view


@dataclasses.dataclass(frozen=True)
class Credential:
    kind: PrincipalKind
    headers: dict[str, str]
    #: Whether it acts for one merchant (a merchant's key, an ISV key naming one, a user session).
    for_merchant: bool = True


@dataclasses.dataclass(frozen=True)
class Known:
    """Real values to put into generated requests: object ids by path parameter name, and references (a mini
    program's appId, a SKU, a super app's code …) by body or query field name."""

    path_ids: dict[str, list[str]]
    fields: dict[str, list[Any]]


@dataclasses.dataclass
class Tally:
    cases: int = 0
    server_errors: int = 0
    schema_violations: int = 0
    statuses: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    #: The first report (with a curl command to reproduce it) of each distinct failure.
    failures: dict[tuple[str, str, int], str] = dataclasses.field(default_factory=dict)

    def record(self, label: str, status: int, group: FailureGroup | None) -> None:
        self.cases += 1
        self.statuses[label, status] += 1
        if group is None:
            return
        if status >= 500:
            self.server_errors += 1  # an undocumented 5xx is one finding, not two
        else:
            self.schema_violations += 1
        for failure in group.exceptions:
            self.failures.setdefault((label, failure.title, status), str(group))

    def report(self) -> str:
        return "\n\n".join(
            f"{label}: {title} ({status})\n{text}" for (label, title, status), text in self.failures.items()
        )


def load_schema():
    """The schema as the running application serves it."""
    return schemathesis.openapi.from_wsgi(SCHEMA_PATH, application)


def serves(operation, credential: Credential) -> bool:
    """Whether the operation's view accepts the credential for its method (``TenantApiView``'s rules)."""
    view = resolve(_PATH_PARAMETER.sub(_A_PUBLIC_ID, operation.path)).func.view_class
    kinds = view.allowed_principals
    if operation.method.upper() not in ("GET", "HEAD", "OPTIONS") and view.write_principals is not None:
        kinds = view.write_principals
    return credential.kind in kinds and (credential.for_merchant or not view.requires_merchant)


def _with_odd_text(value: Any, draw) -> Any:
    """``value`` with a string here and there replaced by text a schema allows but storage may not (NUL, a
    lone surrogate, a right-to-left override …): generators leave those out."""
    if isinstance(value, list):
        return [_with_odd_text(item, draw) for item in value]
    if isinstance(value, dict):
        return {key: _with_odd_text(item, draw) for key, item in value.items()}
    if isinstance(value, str) and draw(st.integers(0, 7)) == 0:
        return draw(st.sampled_from(ODD_TEXT))
    return value


def _with_known(value: Any, fields: dict[str, list[Any]], draw) -> Any:
    """``value`` with fields named in ``fields`` replaced by a real value, most of the time, at any depth."""
    if isinstance(value, list):
        return [_with_known(item, fields, draw) for item in value]
    if not isinstance(value, dict):
        return value
    return {
        key: draw(st.sampled_from(fields[key]))
        if key in fields and draw(st.integers(0, 3))
        else _with_known(item, fields, draw)
        for key, item in value.items()
    }


def fuzz_operation(
    operation,
    mode: GenerationMode,
    *,
    examples: int,
    credentials: list[Credential],
    known: Known,
    tally: Tally,
    derandomize: bool,
) -> None:
    """Send ``examples`` generated requests for ``operation`` and record each answer in ``tally``."""
    served = [credential for credential in credentials if serves(operation, credential)] or credentials

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def send(case, data):
        draw = data.draw
        credential = draw(st.sampled_from(served) if draw(st.integers(0, 3)) else st.sampled_from(credentials))
        headers = {name: value for name, value in (case.headers or {}).items() if name.lower() != "authorization"}
        if "Merchant-Id" in credential.headers or draw(st.integers(0, 3)):
            headers.pop("Merchant-Id", None)  # a generated one now and then, where the credential sends none
        case.headers = {**headers, **credential.headers}
        for name in case.path_parameters or {}:
            if name in known.path_ids and draw(st.integers(0, 3)):
                case.path_parameters[name] = draw(st.sampled_from(known.path_ids[name]))
        if mode is GenerationMode.POSITIVE:
            case.body = _with_known(case.body, known.fields, draw)
            if case.query:
                case.query = _with_known(case.query, known.fields, draw)
        sent = {}
        if case.media_type == "application/json":  # a form part is UTF-8 encoded: it cannot hold a lone surrogate
            odd = _with_odd_text(case.body, draw)
            if odd != case.body:  # sent as bytes: schemathesis would check the case against its schema in UTF-8
                sent["data"] = json.dumps(odd).encode()
        cache.clear()  # rate limits would otherwise answer most of the run with 429
        response = case.call(**sent)
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            tally.record(operation.label, response.status_code, group)
        else:
            tally.record(operation.label, response.status_code, None)

    send()
