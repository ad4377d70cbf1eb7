"""The Django side of bench/notify.py, run with ``bench.settings`` against the migrated, seeded database.

    python -m bench.notify_setup orders COUNT KEY_FILE   pending orders and payments; what the load needs, as JSON
    python -m bench.notify_setup count                   SQL statements per notification, web and task, as JSON

``orders`` bulk-creates COUNT orders of Demo Coffee's mini program, each with a pending payment whose
``paymentRequestId`` is known, and writes the sandbox wallet's private key (PEM) to KEY_FILE so the load
generator signs as the wallet does. Nothing goes through the wallet: only notification handling is measured.

``count`` delivers a few notifications in-process (Django's test client) to the platform and to the baseline,
with the queueing replaced by a list, then runs the queued work directly, and counts the statements of each
part (BEGIN/COMMIT/SAVEPOINT aside): throughput moves with the machine, the statement count does not.
"""

from __future__ import annotations

import datetime
import json
import sys
from unittest import mock

import django

MINI_PROGRAM = "demo-coffee-app"  # seed_demo's paymentUrl mini program of Demo Coffee
AMOUNT, CURRENCY = 1250, "USD"
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
BASELINE_PATH = "/bench/baseline/notify"


def main() -> None:
    django.setup()
    command, *rest = sys.argv[1:]
    if command == "orders":
        count, key_file = int(rest[0]), rest[1]
        print(json.dumps(orders(count, key_file)))
    elif command == "count":
        print(json.dumps(statements()))
    else:
        raise SystemExit(__doc__)


def orders(count: int, key_file: str, *, prefix: str = "bench-notify") -> dict:
    from cryptography.hazmat.primitives import serialization
    from django.db import transaction
    from django.utils import timezone

    from apps.callbacks.models import InboundNotification
    from apps.merchants.models import WalletCredential
    from apps.miniprograms.models import MiniProgram
    from apps.payments.models import Order, OrderKind, OrderStatus, Payment, PaymentStatus
    from apps.sandbox.services import WALLET_KEY_VERSION, wallet_private_key
    from bench.baseline.models import BaselineNotification

    # Benchmark setup across the one demo tenant: no principal to scope by.
    mini_program = MiniProgram.objects.unscoped().select_related("super_app").get(app_id=MINI_PROGRAM)
    credential = WalletCredential.objects.unscoped().get(
        merchant_id=mini_program.merchant_id, super_app=mini_program.super_app
    )
    tenant = {"isv_id": mini_program.isv_id, "merchant_id": mini_program.merchant_id}
    expires_at = timezone.now() + datetime.timedelta(days=1)
    with transaction.atomic():
        created = Order.objects.unscoped().bulk_create(
            [
                Order(
                    **tenant,
                    mini_program=mini_program,
                    kind=OrderKind.PAYMENT,
                    description="Flat white x 2",
                    amount=AMOUNT,
                    currency=CURRENCY,
                    status=OrderStatus.PENDING,
                    expires_at=expires_at,
                )
                for _ in range(count)
            ],
            batch_size=1000,
        )
        payments = Payment.objects.unscoped().bulk_create(
            [
                Payment(
                    **tenant,
                    order=order,
                    payment_request_id=f"{prefix}-{order.pk:08d}",
                    amount=AMOUNT,
                    trade_pay_mode=mini_program.trade_pay_mode,
                    status=PaymentStatus.PENDING,
                )
                for order in created
            ],
            batch_size=1000,
        )
    with open(key_file, "wb") as pem:
        pem.write(
            wallet_private_key().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return {
        "path": mini_program.super_app.payment_notify_url().removeprefix(_base_url()),
        "client_id": credential.client_id,
        "key_version": str(WALLET_KEY_VERSION),
        "order_table": Order._meta.db_table,
        "inbox_table": InboundNotification._meta.db_table,
        "baseline_table": BaselineNotification._meta.db_table,
        "orders": [
            {"order_id": payment.order_id, "payment_request_id": payment.payment_request_id} for payment in payments
        ],
        "amount": {"value": str(AMOUNT), "currency": CURRENCY},
    }


def notification_body(payment_request_id: str, amount: dict, number: int) -> bytes:
    """A v2 ``notifyPayment`` as the wallet sends it: SUCCESS, the payment's exact amount and currency."""
    return json.dumps(
        {
            "paymentRequestId": payment_request_id,
            "paymentId": f"2026112200{number:08d}",
            "paymentResult": {"resultCode": "SUCCESS", "resultStatus": "S", "resultMessage": "success"},
            "paymentAmount": amount,
            "paymentTime": "2026-11-22T10:00:00+08:00",
        },
        separators=(",", ":"),
    ).encode()


def statements() -> dict:
    import tempfile

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from apps.callbacks import services as callbacks
    from apps.sandbox.services import wallet_private_key
    from apps.superapps.client import signing
    from bench.baseline import views as baseline_views
    from bench.baseline.tasks import notification_done

    with tempfile.NamedTemporaryFile() as key_file:
        made = orders(3, key_file.name, prefix="bench-count")
    key = wallet_private_key()

    def deliver(path: str, number: int) -> int:
        body = notification_body(made["orders"][number]["payment_request_id"], made["amount"], number)
        request_time = signing.now_timestamp()
        signature = signing.sign(
            key,
            path=path,
            client_id=made["client_id"],
            timestamp=request_time,
            body=body,
            key_version=made["key_version"],
        )
        with CaptureQueriesContext(connection) as queries:
            response = Client().post(
                path,
                body,
                content_type="application/json",
                HTTP_CLIENT_ID=made["client_id"],
                HTTP_REQUEST_TIME=request_time,
                HTTP_SIGNATURE=signature,
            )
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {response.content[:500]!r}")
        return _counted(queries)

    def run(function, *args, **kwargs) -> int:
        with CaptureQueriesContext(connection) as queries:
            function(*args, **kwargs)
        return _counted(queries)

    counts: dict[str, list[int]] = {"platform_web": [], "platform_task": [], "baseline_web": [], "baseline_task": []}
    for number in range(3):  # the first request of a process also loads keys and warms caches
        queued: list[int] = []
        with mock.patch.object(callbacks, "_queue", queued.append):
            counts["platform_web"].append(deliver(made["path"], number))
        counts["platform_task"].append(run(callbacks.notification_process, notification_id=queued.pop()))
        with mock.patch.object(baseline_views, "notification_done", mock.Mock(delay=queued.append)):
            counts["baseline_web"].append(deliver(BASELINE_PATH, number))
        counts["baseline_task"].append(run(notification_done, queued.pop()))
    return {part: min(seen) for part, seen in counts.items()}


def _counted(queries) -> int:
    return sum(not query["sql"].startswith(TRANSACTION_CONTROL) for query in queries.captured_queries)


def _base_url() -> str:
    from django.conf import settings

    return settings.PUBLIC_BASE_URL


if __name__ == "__main__":
    main()
