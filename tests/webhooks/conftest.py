"""A merchant's webhook endpoint on loopback, and a mini program that points at it."""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.db import transaction

from apps.miniprograms.models import MiniProgram
from apps.miniprograms.services import mini_program_rotate_webhook_secret, mini_program_update
from apps.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEvent
from apps.webhooks.services import webhook_event_record
from isv_platform.celery import app as celery_app

HANG = "hang"  # an answer that never comes (until the test ends)


@dataclasses.dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Endpoint:
    """Records every request, and answers from ``script`` (status codes, ``Answer``s or ``HANG``), then 200."""

    def __init__(self, ssl_context=None) -> None:
        self.received: list[Received] = []
        self.script: collections.deque = collections.deque()
        self.released = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                endpoint.received.append(Received(self.path, headers, body))
                answer = endpoint.script.popleft() if endpoint.script else 200
                if answer == HANG:
                    endpoint.released.wait(timeout=10)
                    return
                answer = answer if isinstance(answer, Answer) else Answer(answer)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that hung up early (read cap, timeout) is what some tests do

        self.server = Server(("127.0.0.1", 0), Handler)
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_port

    def url(self, path: str = "/hooks", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    served = Endpoint()
    yield served
    served.close()


@dataclasses.dataclass
class Hooked:
    """Merchant a1's mini program with its webhook URL on the endpoint, and its secret as the merchant has it."""

    mini_program: MiniProgram
    secret: str

    def record(self, type: str = "order.paid", data: dict | None = None) -> WebhookEvent:
        with transaction.atomic():
            return webhook_event_record(
                isv_id=self.mini_program.isv_id,
                merchant_id=self.mini_program.merchant_id,
                mini_program_id=self.mini_program.pk,
                type=type,
                data={"id": "ord_test", "status": "paid", "amount": 1250, "currency": "USD"} if data is None else data,
            )

    def delivery(self, event: WebhookEvent) -> WebhookDelivery:
        return WebhookDelivery.objects.unscoped().get(event=event)

    def failed_delivery(self) -> WebhookDelivery:
        """The delivery of a new event, as it is once it gave up (set directly: test_delivery gives up)."""
        delivery = self.delivery(self.record())
        WebhookDelivery.objects.unscoped().filter(pk=delivery.pk).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None, attempt_count=12, last_status_code=500
        )
        delivery.refresh_from_db()
        return delivery


@pytest.fixture
def hooked(world, endpoint) -> Hooked:
    mini_program = MiniProgram.objects.unscoped().get(app_id="canary-app-a1")
    mini_program = mini_program_update(mini_program=mini_program, webhook_url=endpoint.url())
    return Hooked(
        mini_program=mini_program, secret=mini_program_rotate_webhook_secret(mini_program=mini_program).webhook_secret
    )


@pytest.fixture
def eager_tasks():
    """Queued tasks run at once, in the test, instead of going to a broker."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def resolving(monkeypatch):
    """``resolving({"hooks.merchant.example": ["127.0.0.1"]})``: names resolve to the given addresses (a list
    per look-up, the last one repeating); other names and addresses resolve as usual. Returns the list of the
    patched names looked up, one entry per look-up."""
    looked_up: list[str] = []
    real = socket.getaddrinfo

    def install(table: dict[str, list]) -> list[str]:
        def getaddrinfo(host, port, *args, **kwargs):
            if host not in table:
                return real(host, port, *args, **kwargs)
            looked_up.append(host)
            answers = table[host]
            answer = answers[min(looked_up.count(host), len(answers)) - 1]
            addresses = answer if isinstance(answer, list) else [answer]
            return [
                (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in addresses
            ]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return looked_up

    return install


def documented_verify():
    """The ``verify`` function of the Python snippet in docs/webhooks.md, run as a merchant would."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(snippet, "docs/webhooks.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]
