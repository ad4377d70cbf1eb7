"""T-SEC-4: over a thousand forged, tampered, stale and misaddressed notifications are all refused and change
nothing; a valid one at the edge of the time window is accepted; an exact replay is acknowledged with no
effect. Seeded and deterministic."""

import base64
import datetime
import json
import random
import urllib.parse

import pytest
from django.test import Client
from django.utils import timezone

from apps.payments.models import Order, Payment, PaymentEvent
from apps.sandbox.services import WALLET_KEY_VERSION, wallet_private_key
from apps.superapps.client import keys, signing
from tests.callbacks.inbox import arrived, drain_inbox
from tests.conftest import _test_key_pair
from tests.payments.test_orders import _order

pytestmark = pytest.mark.reliability

CLIENT_ID = "client-shop-app"


def _body(payment: Payment) -> bytes:
    return json.dumps(
        {
            "paymentRequestId": payment.payment_request_id,
            "paymentId": "2026112200000077",
            "paymentResult": {"resultCode": "SUCCESS", "resultStatus": "S"},
            "paymentAmount": {"currency": "USD", "value": str(payment.amount)},
        }
    ).encode()


def _post(path: str, body: bytes, headers: dict):
    meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    return Client().post(path, body, content_type="application/json", **meta)


def _signed_headers(path: str, body: bytes, *, key=None, client_id=CLIENT_ID, request_time=None) -> dict:
    request_time = request_time or signing.now_timestamp()
    signature = signing.sign(
        key or wallet_private_key(),
        path=path,
        client_id=client_id,
        timestamp=request_time,
        body=body,
        key_version=str(WALLET_KEY_VERSION),
    )
    return {"Client-Id": client_id, "Request-Time": request_time, "Signature": signature}


def _signature_bytes(header: str) -> bytes | None:
    """What a ``Signature`` header's value decodes to (the unused bits of base64's last character, and the
    case of percent escapes, spell the same signature)."""
    value = urllib.parse.unquote(signing.parse_signature_header(header).get("signature", ""))
    try:
        return base64.b64decode(value)
    except ValueError:  # not base64 at all
        return None


def _forgeries(path: str, body: bytes, valid: dict, rng: random.Random, tolerance: int):
    """(label, path, body, headers) of deliveries that must all be refused."""
    other_key = keys.load_private_key(_test_key_pair()[0])
    yield "another key", path, body, _signed_headers(path, body, key=other_key)
    for skew in (tolerance + 1, -(tolerance + 1), 3600, -86400):
        stamp = (timezone.now() - datetime.timedelta(seconds=skew)).isoformat(timespec="milliseconds")
        yield f"stale by {skew}s (signed)", path, body, _signed_headers(path, body, request_time=stamp)
    yield "request time in epoch ms, stale", path, body, _signed_headers(path, body, request_time="1000000000000")
    for name in valid:
        yield f"without {name}", path, body, {key: value for key, value in valid.items() if key != name}
    yield "another client id", path, body, {**valid, "Client-Id": "canary-client-a2"}
    yield "re-serialised body", path, json.dumps(json.loads(body), indent=1).encode(), valid
    yield "another path", path.replace("/payments/notify", "/merchants/notify-registration"), body, valid
    yield "signed for another path", path, body, _signed_headers(path + "x", body)
    yield "unknown algorithm", path, body, {**valid, "Signature": valid["Signature"].replace("RSA256", "RSA1")}
    for position in range(len(body)):
        flipped = bytearray(body)
        flipped[position] ^= 1 << rng.randrange(8)
        yield f"body bit flip at {position}", path, bytes(flipped), valid
        replaced = bytearray(body)
        replaced[position] = rng.choice([byte for byte in range(256) if byte != body[position]])
        yield f"body byte replaced at {position}", path, bytes(replaced), valid
    signature = valid["Signature"]
    start = signature.index("signature=") + len("signature=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    for position in range(start, len(signature)):
        replacement = rng.choice([c for c in alphabet if c != signature[position]])
        forged = signature[:position] + replacement + signature[position + 1 :]
        if _signature_bytes(forged) != _signature_bytes(signature):  # not merely another spelling of it
            yield f"signature char {position}", path, body, {**valid, "Signature": forged}
    for position in range(len(valid["Request-Time"])):
        stamp = valid["Request-Time"]
        if stamp[position].isdigit():
            changed = stamp[:position] + str((int(stamp[position]) + 1) % 10) + stamp[position + 1 :]
            yield f"request time digit {position}", path, body, {**valid, "Request-Time": changed}
    for _ in range(200):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        yield "random bytes, validly signed", path, junk, _signed_headers(path, junk, client_id="unknown-client")


def test_a_thousand_forgeries_are_refused_and_change_nothing(world, api, shop, wallet, settings, figures, time_machine):
    order_id = _order(api, world).json()["id"]
    payment = Payment.objects.unscoped().get(order__public_id=order_id)
    # The clock stands still: a forgery 301 s ahead must still be 301 s ahead when it arrives, however long
    # building a thousand of them takes on a loaded machine.
    time_machine.move_to(timezone.now(), tick=False)
    path = f"/callbacks/{wallet.super_app.callback_token}/payments/notify"
    body = _body(payment)
    valid = _signed_headers(path, body)
    events_before = PaymentEvent.objects.unscoped().count()

    rng = random.Random(20261122)  # noqa: S311 - replayable test data, not secrets
    forgeries = list(_forgeries(path, body, valid, rng, wallet.super_app.notification_tolerance_seconds))
    assert len(forgeries) >= 1000
    for label, forged_path, forged_body, headers in forgeries:
        response = _post(forged_path, forged_body, headers)
        assert 400 <= response.status_code < 500, (label, response.status_code)
    assert drain_inbox() == 0
    assert not arrived().exclude(status="rejected").exists()
    assert Order.objects.unscoped().get(public_id=order_id).status == "pending"
    assert PaymentEvent.objects.unscoped().count() == events_before
    rejected = arrived().filter(status="rejected").count()
    changes = PaymentEvent.objects.unscoped().count() - events_before

    accepted = _post(path, body, valid)
    replayed = _post(path, body, valid)
    assert (accepted.status_code, replayed.status_code) == (200, 200)
    assert json.loads(replayed.content)["result"]["resultStatus"] == "S"
    drain_inbox()
    assert Order.objects.unscoped().get(public_id=order_id).status == "paid"
    assert sorted(arrived().exclude(status="rejected").values_list("status", flat=True)) == [
        "duplicate",
        "processed",
    ]
    processed = arrived().filter(status="processed").count()
    figures.record(
        "T-SEC-4",
        f"{len(forgeries)} forgeries, {rejected} refused and kept as rejected, {changes} state changes; "
        f"the valid one accepted, its exact replay acknowledged ({replayed.status_code}) with "
        f"{processed - 1} effects",
    )


@pytest.mark.parametrize("skew", [299, -299])
def test_a_valid_notification_just_inside_the_window_is_accepted(world, api, shop, wallet, skew, figures):
    order_id = _order(api, world).json()["id"]
    payment = Payment.objects.unscoped().get(order__public_id=order_id)
    path = f"/callbacks/{wallet.super_app.callback_token}/payments/notify"
    stamp = (timezone.now() - datetime.timedelta(seconds=skew)).isoformat(timespec="milliseconds")
    assert _post(path, _body(payment), _signed_headers(path, _body(payment), request_time=stamp)).status_code == 200
    tolerance = wallet.super_app.notification_tolerance_seconds
    when = "old" if skew > 0 else "ahead"
    figures.record("T-SEC-4", f"a valid notification {abs(skew)} s {when} (tolerance {tolerance} s) accepted")
