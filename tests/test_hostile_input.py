"""Nothing a client can send produces a 500: hostile path values, headers and bodies on every API route."""

import json

import pytest
from django.test import Client

from tests.test_isolation import METHODS, _api_routes, _fill

HOSTILE_VALUES = [
    "cD0AYWJj",  # a base64 cursor whose position holds a NUL byte
    "%00",
    "x" * 5000,
    "%F0%9F%92%A9",
    "..%2F..%2Fetc",
    "'; DROP TABLE x; --",
    "%25s%25n",
]
HOSTILE_BODIES = [
    "null",
    "[]",
    '"text"',
    "1e999999",
    '{"name": null, "expires_at": 12}',
    '{"name": "a\\u0000b"}',
    '{"name": {"nested": true}, "expires_at": "not a date"}',
    '{"name": "' + "y" * 100 + '", "expires_at": "9999-12-31T23:59:59+14:00"}',
    "[" * 100_000 + "]" * 100_000,
    '{"a": ' * 50_000 + "1" + "}" * 50_000,
]
HOSTILE_HEADERS = [
    {"HTTP_MERCHANT_ID": "x" * 5000},
    {"HTTP_MERCHANT_ID": "mer_\u00e9\u00e9"},
    {"HTTP_AUTHORIZATION": "Bearer " + "A" * 10000},
    {"HTTP_AUTHORIZATION": "bearer\tmsk_x"},
]


@pytest.fixture
def routes():
    return [route for route, _ in _api_routes() if "schema" not in route and "docs" not in route]


def _assert_handled(response, where: str) -> None:
    assert response.status_code < 500, f"{where} answered {response.status_code}"
    if response.status_code >= 400:
        assert "error" in json.loads(response.content), where


def test_hostile_path_values(world, routes):
    client = Client()
    auth = {
        "HTTP_AUTHORIZATION": f"Bearer {world.a.key}",
        "HTTP_MERCHANT_ID": world.a.merchants[0].merchant.public_id,
    }
    for route in routes:
        for value in HOSTILE_VALUES:
            path = _fill(route, value) if "<" in route else _fill(route, "") + "?cursor=" + value + "&limit=" + value
            for method in METHODS:
                _assert_handled(
                    client.generic(method.upper(), path, "{}", "application/json", **auth), f"{method} {path}"
                )


def test_hostile_bodies(world, routes):
    client = Client()
    merchant = world.a.merchants[0].merchant
    auth = {"HTTP_AUTHORIZATION": f"Bearer {world.a.key}", "HTTP_MERCHANT_ID": merchant.public_id}
    for route in routes:
        path = _fill(route, "key_" + "0" * 26)
        for body in HOSTILE_BODIES:
            for method in ("post", "put", "patch"):
                response = client.generic(method.upper(), path, body, "application/json", **auth)
                _assert_handled(response, f"{method} {path} {body[:30]}")


def test_hostile_headers(world, routes):
    client = Client()
    for route in routes:
        path = _fill(route, "key_" + "0" * 26)
        for headers in HOSTILE_HEADERS:
            merged = {"HTTP_AUTHORIZATION": f"Bearer {world.a.key}", **headers}
            _assert_handled(client.get(path, **merged), f"GET {path} {list(headers)}")
