"""SENTRY_DSN: an unhandled error in a view reaches Sentry (a fake one on loopback, over real HTTP) tagged with
its request id, and none of the request's headers, cookies or body goes with it."""

from __future__ import annotations

import gzip
import http.server
import sys
import threading

import pytest
import sentry_sdk
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import Client
from django.urls import path

from isv_platform import error_tracking

SECRET = "isk_" + "do-not-send" * 2  # built, so the source lines a report quotes do not hold it


def _boom(request) -> HttpResponse:
    raise RuntimeError("the view failed")


urlpatterns = [path("boom", _boom)]


class _FakeSentry(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_sentry():
    _FakeSentry.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeSentry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    sentry_sdk.init()  # no DSN: reporting off again
    server.shutdown()


@pytest.mark.urls(__name__)
def test_an_unhandled_error_is_reported_with_its_request_id_and_nothing_the_caller_sent(db, fake_sentry):
    error_tracking.start(dsn=f"http://public@127.0.0.1:{fake_sentry.server_port}/1", environment="test")
    response = Client(raise_request_exception=False).post(
        "/boom?token=abc",
        f'{{"key": "{SECRET}"}}',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {SECRET}",
        HTTP_COOKIE=f"sessionid={SECRET}",
        HTTP_X_REQUEST_ID="req_sentry-test-1",
    )
    assert response.status_code == 500
    sentry_sdk.flush(timeout=5)
    sent = b"".join(_FakeSentry.received).decode()
    assert "the view failed" in sent
    assert "req_sentry-test-1" in sent
    assert SECRET not in sent
    assert "token=abc" not in sent


def test_a_dsn_without_the_library_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)
    with pytest.raises(ImproperlyConfigured, match=r"pip install '\.\[sentry\]'"):
        error_tracking.start(dsn="http://public@127.0.0.1:9/1", environment="test")
