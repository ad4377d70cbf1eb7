"""Every API error leaves in one envelope with a stable code; nothing a client sends produces a 500."""

import pytest
from django.test import Client
from django.urls import path
from rest_framework.test import APIClient

from apps.core.api.throttling import TenantRateThrottle
from apps.core.api.views import TenantApiView
from isv_platform import urls as project_urls


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert {"type", "code", "message", "attr", "request_id"} <= set(body["error"])
    assert body["error"]["request_id"] == response["X-Request-Id"]
    return body["error"]


def test_unknown_api_route_is_a_json_404(db):
    response = Client().get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert _error(response)["code"] == "request.unknown_route"


def test_wrong_method_is_405_in_the_envelope(world, api):
    response = api.as_key(world.a.merchants[0].key).put("/api/v1/merchant", {})
    assert response.status_code == 405
    assert _error(response)["code"] == "request.method_not_allowed"


def test_malformed_json_is_400(world, api):
    response = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant).generic(
        "POST", "/api/v1/api-keys", '{"name": ', content_type="application/json"
    )
    assert response.status_code == 400
    assert _error(response)["code"] == "request.malformed_body"


def test_non_json_body_is_415(world, api):
    response = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant).generic(
        "POST", "/api/v1/api-keys", "name=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert _error(response)["code"] == "request.unsupported_media_type"


def test_validation_error_names_the_field(world, api):
    response = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant).post(
        "/api/v1/api-keys", {"name": "x" * 101}, format="json"
    )
    assert response.status_code == 400
    error = _error(response)
    assert (error["code"], error["attr"]) == ("validation.max_length", "name")
    assert error["message"].startswith("name: ")
    assert error["details"] == [{"attr": "name", "code": "validation.max_length", "message": error["message"][6:]}]


def test_a_json_array_instead_of_an_object_is_a_400_not_a_500(world, api):
    response = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant).post(
        "/api/v1/api-keys", [1, 2], format="json"
    )
    assert response.status_code == 400
    assert _error(response)["type"] == "invalid_request"


def test_oversized_body_is_413(world, api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant).post(
        "/api/v1/api-keys", {"name": "x" * 2000}, format="json"
    )
    assert response.status_code == 413
    assert _error(response)["code"] == "request.body_too_large"


def test_rate_limit_is_429_with_retry_after_and_per_tenant(world, api, monkeypatch):
    monkeypatch.setattr(TenantRateThrottle, "THROTTLE_RATES", {"tenant": "2/min"})
    client = api.as_key(world.a.merchants[0].key)
    statuses = [client.get("/api/v1/merchant").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = client.get("/api/v1/merchant")
    assert _error(response)["code"] == "request.rate_limited"
    assert int(response["Retry-After"]) > 0
    # Another merchant's budget is its own.
    assert (
        APIClient().get("/api/v1/merchant", HTTP_AUTHORIZATION=f"Bearer {world.a.merchants[1].key}").status_code == 200
    )


def test_an_inbound_request_id_is_echoed_only_when_plain(world, api):
    client = api.as_key(world.a.merchants[0].key)
    assert client.get("/api/v1/merchant", HTTP_X_REQUEST_ID="trace-12345678")["X-Request-Id"] == "trace-12345678"
    injected = client.get("/api/v1/merchant", HTTP_X_REQUEST_ID="bad id\r\nSet-Cookie: x")["X-Request-Id"]
    assert injected.startswith("req_")


class _Broken(TenantApiView):
    def get(self, request):
        raise RuntimeError("a bug")


urlpatterns = [path("api/v1/broken", _Broken.as_view())]
handler500 = project_urls.handler500


@pytest.mark.urls("tests.core.test_api_errors")
def test_an_unhandled_bug_is_a_500_in_the_envelope_without_details(world):
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/broken", HTTP_AUTHORIZATION=f"Bearer {world.a.merchants[0].key}")
    assert response.status_code == 500
    error = _error(response)
    assert error["code"] == "server.internal_error"
    assert "a bug" not in response.content.decode()
