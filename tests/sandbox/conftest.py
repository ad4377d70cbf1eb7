"""Fixtures for the sandbox wallet: a merchant key pair, a registered client, a signed HTTP caller, and a
merchant endpoint that records what the wallet notifies.

The signing here is written independently from ``apps.sandbox.signing`` (after §2.7 of the protocol), so a
mistake there cannot hide behind the same mistake here.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime as dt
import json
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from apps.sandbox import services
from apps.sandbox.models import Payment
from apps.sandbox.protocol import Dialect

CLIENT_ID = "SANDBOX_5X00000000000001"
PARTNER_ID = "P000000000000001"
CLASSIC_APP_ID = "2021000000000001"
APP_ID = "3333010071465913001"
ALICE_START = 1_000_000_00  # SANDBOX_DEFAULT_BALANCE
ACK = json.dumps({"result": {"resultCode": "SUCCESS", "resultStatus": "S", "resultMessage": "success"}})


def content(method: str, path: str, client_id: str, timestamp: str, body: bytes) -> bytes:
    return f"{method} {path}\n{client_id}.{timestamp}.".encode() + body


def sign(private_key, method: str, path: str, client_id: str, timestamp: str, body: bytes) -> str:
    raw = private_key.sign(content(method, path, client_id, timestamp, body), padding.PKCS1v15(), hashes.SHA256())
    return urllib.parse.quote_plus(base64.b64encode(raw).decode())


def verifies(public_pem: str, method: str, path: str, client_id: str, timestamp: str, body: bytes, header: str) -> bool:
    encoded = header.split("signature=", 1)[1]
    public_key = serialization.load_pem_public_key(public_pem.encode())
    try:
        public_key.verify(
            base64.b64decode(urllib.parse.unquote(encoded)),
            content(method, path, client_id, timestamp, body),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        return False
    return True


def classic_params(private_key, method: str, biz, **overrides) -> dict:
    """Classic gateway parameters (§8) signed like python-alipay-sdk: RSA2 over the sorted ``k=v`` pairs with
    raw values, empty ones dropped, ``sign_type`` included; ``biz`` is a dict (dumped compactly) or text."""
    params = {
        "app_id": CLASSIC_APP_ID,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": "2026-03-02 10:00:00",
        "version": "1.0",
        "biz_content": biz if isinstance(biz, str) else json.dumps(biz, separators=(",", ":"), ensure_ascii=False),
        **overrides,
    }
    params = {key: value for key, value in params.items() if value}
    text = "&".join(f"{key}={value}" for key, value in sorted(params.items()))
    raw = private_key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    return {**params, "sign": base64.b64encode(raw).decode()}


def rsa2_verifies(public_pem_text: str, signature: str, text: str) -> bool:
    """A classic RSA2 signature (base64 SHA256withRSA) of ``text``."""
    public_key = serialization.load_pem_public_key(public_pem_text.encode())
    try:
        public_key.verify(base64.b64decode(signature), text.encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def public_pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="session")
def merchant_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def merchant(db, merchant_key):
    client, _ = services.client_register(
        client_id=CLIENT_ID,
        public_key=public_pem(merchant_key),
        name="Demo Coffee",
        partner_id=PARTNER_ID,
        classic_app_id=CLASSIC_APP_ID,
        site_name="GCASH",
    )
    return client


@pytest.fixture
def wallet_public_pem(db):
    return services.wallet_key().public_key_pem


@dataclasses.dataclass
class Answer:
    """What the wallet said, with its raw body for signature checks."""

    response: httpx.Response
    path: str

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def json(self) -> dict:
        return self.response.json()

    @property
    def result(self) -> dict:
        return self.json["result"]

    def signed_by(self, public_pem_text: str, method: str = "POST") -> bool:
        headers = self.response.headers
        return verifies(
            public_pem_text,
            method,
            self.path,
            headers["client-id"],
            headers["response-time"],
            self.response.content,
            headers["signature"],
        )


class WalletCaller:
    """A merchant server calling the sandbox OpenAPI over real HTTP, signing like the official SDK."""

    def __init__(self, base_url: str, private_key, client_id: str = CLIENT_ID) -> None:
        self.base_url = base_url
        self.private_key = private_key
        self.client_id = client_id
        self.http = httpx.Client(timeout=10)

    def post(
        self, endpoint: str, body, *, version: str = "v2", headers: dict | None = None, timeout=10, **options
    ) -> Answer:
        path = f"/sandbox/{version}/{endpoint}"
        raw = body if isinstance(body, bytes) else json.dumps(body, indent=2).encode()
        signed = self.headers(path, raw, **options) | (headers or {})
        return Answer(self.http.post(self.base_url + path, content=raw, headers=signed, timeout=timeout), path)

    def get(self, path: str, **options) -> Answer:
        return Answer(
            self.http.get(self.base_url + path, headers=self.headers(path, b"", method="GET", **options)), path
        )

    def headers(
        self, path: str, raw: bytes, *, method: str = "POST", key=None, key_version: str = "1", separator: str = ","
    ) -> dict:
        timestamp = now_iso()
        signature = sign(key or self.private_key, method, path, self.client_id, timestamp, raw)
        return {
            "Content-Type": "application/json; charset=UTF-8",
            "client-id": self.client_id,
            "Request-Time": timestamp,
            "Signature": separator.join(["algorithm=RSA256", f"keyVersion={key_version}", f"signature={signature}"]),
        }


@pytest.fixture
def caller(live_server, merchant, merchant_key):
    wallet = WalletCaller(live_server.url, merchant_key)
    yield wallet
    wallet.http.close()


def pay_body(request_id: str = "pr_0001", value: str = "1000", currency: str = "USD", **extra) -> dict:
    return {
        "appId": APP_ID,
        "paymentRequestId": request_id,
        "productCode": "CASHIER_PAYMENT",
        "paymentAmount": {"currency": currency, "value": value},
        "order": {
            "referenceOrderId": f"order-{request_id}",
            "orderDescription": "Two flat whites",
            "merchant": {"merchantDisplayName": "Demo Coffee Kiosk"},
        },
        **extra,
    }


@dataclasses.dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def form(self) -> dict:
        return dict(urllib.parse.parse_qsl(self.body.decode(), keep_blank_values=True))


class Receiver:
    """A merchant's notification endpoint: records every request and answers from a script (then ``ACK``)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: collections.deque[tuple[int, str]] = collections.deque()
        self.default = (200, ACK)
        self.delay = 0.0  # seconds before answering, to outlast the wallet's timeout
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._arrived:
                    receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                    status, text = receiver.script.popleft() if receiver.script else receiver.default
                    receiver._arrived.notify_all()
                time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/notify") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.received) >= count, timeout), self.received
        return self.received


@pytest.fixture
def receiver():
    endpoint = Receiver()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


def join_notifiers() -> None:
    """Wait for the first-attempt threads the wallet starts after commit."""
    for thread in threading.enumerate():
        if thread.name == "sandbox-notifier":
            thread.join(timeout=15)


@pytest.fixture(autouse=True)
def _notifiers_finish():
    """No notifier thread outlives its test (it would write into the next test's database)."""
    yield
    join_notifiers()


CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def cashier_submit(http: httpx.Client, cashier_url: str, action: str = "pay", user: str = "alice") -> httpx.Response:
    """Open the cashier page like a browser, then press Pay (or Cancel) as ``user``."""
    page = http.get(cashier_url)
    token = CSRF_FIELD.search(page.text).group(1)
    return http.post(cashier_url, data={"csrfmiddlewaretoken": token, "action": action, "user": user})


def pay_at_cashier(caller: WalletCaller, body: dict, user: str = "alice", **options) -> str:
    """Create a payment over the OpenAPI and pay it at the cashier; returns its paymentId."""
    answer = caller.post("payments/pay", body, **options)
    form = answer.json.get("redirectActionForm") or answer.json["actionForm"]
    response = cashier_submit(caller.http, form["redirectionUrl"], user=user)
    assert response.status_code in (200, 302), response.text
    return answer.json["paymentId"]


def new_payment(client, *, notify_url: str = "", request_id: str = "pr_1", fault_settings=None, amount: int = 1000):
    """A payment made through the services (no HTTP), awaiting the user."""
    order = services.PaymentOrder(
        payment_request_id=request_id,
        currency="USD",
        amount=amount,
        product_code="CASHIER_PAYMENT",
        payee_name=client.name,
        order_description="",
        notify_url=notify_url,
        redirect_url="",
        expires_at=None,
        partner_id="",
    )
    answer = services.payment_create(
        client=client,
        dialect=Dialect.V2,
        order=order,
        fingerprint=request_id,
        fault_settings=fault_settings or {},
        cashier_url=lambda payment_id: f"http://wallet.test/cashier/{payment_id}",
    )
    return Payment.objects.get(payment_id=answer["paymentId"])


def paid_payment(client, **options):
    """A payment made and paid by alice through the services, for tests of what happens afterwards."""
    return services.payment_pay(payment_id=new_payment(client, **options).payment_id, login="alice")
