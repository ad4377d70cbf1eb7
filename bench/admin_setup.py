"""The child processes of bench/admin.py, run with ``bench.settings`` against the migrated, seeded database.

    python -m bench.admin_setup load ORDERS OTHERS       the orders and their evidence; what to request, as JSON
    python -m bench.admin_setup measure TARGETS REQUESTS WARMUP   server time and queries per page, as JSON

``load`` gives Demo Coffee ``ORDERS`` orders and ``OTHERS`` more to other tenants (half to Demo Rentals of the
same ISV, half to a merchant of a second ISV), each tenant's rows cloned from one template order, payment,
event, notification and webhook event made by the ORM, by ``INSERT … SELECT`` over ``generate_series``:

- orders spread evenly over the last 90 days, public ids time-ordered as ULIDs are, references
  ``REF-000000001``… unique per merchant (the other tenants have the same references, so a search that leaked
  across tenants would find more than one); statuses by the order's number: 80 % paid, 7 % failed, 4 %
  closed, 3 % processing, 2 % refunded, 1 % partially refunded, 3 % pending;
- one payment per order with its ``paymentRequestId`` and, once the wallet answered, its ``paymentId``;
- three events for every tenth order, the opened one among them (created; the payment's and the order's
  outcome; events are read by their order's index, so how many other orders have them does not matter),
  one inbox notification per payment the wallet decided (``processed``) and one ``order.paid`` webhook event
  per paid order — what the detail page's timeline reads;
- ``ANALYZE`` of every table written.

``measure`` logs in as a merchant-level staff member of Demo Coffee (``Client.force_login``) and times each
page in-process, from the request to the rendered response: the changelist's first page, a filtered page, the
search by reference and by paymentId, and the detail page of an order from mid-range, with its timeline.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import time

from bench.harness import clone, percentile

MINI_PROGRAM = "demo-coffee-app"  # seed_demo's mini program of Demo Coffee, the measured merchant
OTHER_MINI_PROGRAM = "demo-rentals-app"  # Demo Rentals, another merchant of the same ISV
OTHER_ISV, OTHER_MERCHANT, OTHER_APP = "Bench Other ISV", "Bench Other Merchant", "bench-other-app"
STAFF = "bench-coffee-staff"
DAYS = 90
PAID_STATUSES = ("paid", "refunded", "partially_refunded")
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
#: The order's status by its number modulo 100; the payment's status follows from it.
STATUS = """CASE WHEN g % 100 < 80 THEN 'paid' WHEN g % 100 < 87 THEN 'failed' WHEN g % 100 < 91 THEN 'closed'
    WHEN g % 100 < 94 THEN 'processing' WHEN g % 100 < 96 THEN 'refunded'
    WHEN g % 100 < 97 THEN 'partially_refunded' ELSE 'pending' END"""
PAYMENT_STATUS = """CASE o.status WHEN 'failed' THEN 'failed' WHEN 'closed' THEN 'cancelled'
    WHEN 'processing' THEN 'unknown' WHEN 'pending' THEN 'pending' ELSE 'succeeded' END"""


def main() -> None:
    import django

    django.setup()
    command, *rest = sys.argv[1:]
    if command == "load":
        print(json.dumps(load(int(rest[0]), int(rest[1]))))
    elif command == "measure":
        print(json.dumps(measure(json.loads(rest[0]), int(rest[1]), int(rest[2]))))
    else:
        raise SystemExit(__doc__)


def load(orders: int, others: int) -> dict:
    from django.db import connection, transaction
    from django.utils import timezone

    from apps.accounts import services as account_services
    from apps.accounts.models import User
    from apps.callbacks.models import InboundNotification
    from apps.core.tenancy import Role
    from apps.merchants.models import Merchant
    from apps.miniprograms.models import MiniProgram
    from apps.payments.models import Order, Payment, PaymentEvent
    from apps.webhooks.models import WebhookEvent

    started = time.perf_counter()
    now = timezone.now().replace(microsecond=0)
    # Benchmark setup across tenants: no principal to scope by.
    coffee = MiniProgram.objects.unscoped().select_related("super_app", "merchant").get(app_id=MINI_PROGRAM)
    rentals = MiniProgram.objects.unscoped().get(app_id=OTHER_MINI_PROGRAM)
    with transaction.atomic():
        other = _other_isv_mini_program(coffee.super_app)
        staff = User.objects.create_user(username=STAFF)
        account_services.membership_set(
            user=staff, isv=coffee.merchant.isv, merchant=coffee.merchant, role=Role.STAFF, may_refund=True
        )
    tenants = [(1, coffee, orders), (2, rentals, others // 2), (3, other, others - others // 2)]
    with transaction.atomic(), connection.cursor() as cursor:
        for number, mini_program, count in tenants:
            _tenant(cursor, number, mini_program, count, now)
    loaded = time.perf_counter() - started
    with connection.cursor() as cursor:
        for model in (Order, Payment, PaymentEvent, InboundNotification, WebhookEvent, Merchant):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    # The order a customer asks about: a paid one from mid-range, 45 days old.
    middle = (orders // 2) - (orders // 2) % 100 + 10
    opened = Order.objects.unscoped().get(merchant=coffee.merchant, reference=_reference(middle))
    payment = Payment.objects.unscoped().get(order=opened)
    week_from = (now - dt.timedelta(days=45)).date()
    return {
        "load_seconds": loaded,
        "analyze_seconds": time.perf_counter() - started - loaded,
        "rows": {
            model._meta.db_table: model.objects.unscoped().count()
            for model in (Order, Payment, PaymentEvent, InboundNotification, WebhookEvent)
        },
        "targets": {
            "staff": STAFF,
            "order": opened.pk,
            "reference": opened.reference,
            "payment_id": payment.wallet_payment_id,
            "since": week_from.isoformat(),
            "until": (week_from + dt.timedelta(days=7)).isoformat(),
        },
    }


def _reference(number: int) -> str:
    return f"REF-{number:09d}"


def _other_isv_mini_program(super_app):
    """A merchant of a second ISV with a mini program at the same super app."""
    from apps.merchants import services as merchant_services
    from apps.miniprograms import services as mini_program_services
    from apps.superapps.models import TradePayMode

    isv = merchant_services.isv_create(name=OTHER_ISV)
    merchant = merchant_services.merchant_create(isv=isv, name=OTHER_MERCHANT)
    return mini_program_services.mini_program_create(
        merchant=merchant,
        super_app=super_app,
        app_id=OTHER_APP,
        name="Bench other mini program",
        trade_pay_mode=TradePayMode.PAYMENT_URL,
        default_currency="USD",
    ).mini_program


def _tenant(cursor, number: int, mini_program, count: int, now: dt.datetime) -> None:
    """``count`` orders of ``mini_program`` with their payments and evidence, cloned from one template each."""
    from apps.callbacks.models import InboundNotification, NotificationKind, NotificationStatus
    from apps.payments.models import Order, OrderStatus, Payment, PaymentEvent, PaymentStatus
    from apps.webhooks.models import WebhookEvent

    tenant = {"isv_id": mini_program.isv_id, "merchant_id": mini_program.merchant_id}
    order = Order.objects.unscoped().create(
        **tenant,
        mini_program=mini_program,
        description="bench template",
        reference=f"template-{number}",
        amount=1000,
        currency="USD",
        status=OrderStatus.PAID,
        paid_amount=1000,
        paid_at=now,
        expires_at=now,
    )
    payment = Payment.objects.unscoped().create(
        **tenant,
        order=order,
        payment_request_id=f"template-{number}",
        wallet_payment_id=f"W-template-{number}",
        amount=1000,
        trade_pay_mode=mini_program.trade_pay_mode,
        status=PaymentStatus.SUCCEEDED,
    )
    event = PaymentEvent.objects.unscoped().create(
        **tenant, order=order, payment=payment, subject="payment", from_status="pending", to_status="succeeded"
    )
    notification = InboundNotification.objects.unscoped().create(
        **tenant,
        super_app_id=mini_program.super_app_id,
        kind=NotificationKind.PAYMENT,
        headers={"content-type": "application/json"},
        body=b'{"paymentResult":{"resultCode":"SUCCESS","resultStatus":"S"}}',
        status=NotificationStatus.PROCESSED,
        subject=payment.payment_request_id,
        outcome="payment succeeded; order paid",
    )
    webhook = WebhookEvent.objects.unscoped().create(
        **tenant, mini_program=mini_program, type="order.paid", data={"id": order.public_id}
    )
    ours = f"o.merchant_id = {int(mini_program.merchant_id)} AND o.reference LIKE 'REF-%'"
    # Evenly over the last DAYS days, oldest first; ids time-ordered like ULIDs (milliseconds, tenant, number).
    at = f"'{now.isoformat()}'::timestamptz - make_interval(secs => ({count} - g)::float8 / {count} * {DAYS * 86400})"
    series = (
        f"generate_series(1, {count}) AS g CROSS JOIN LATERAL (SELECT {at}) AS a(at)"
        f" CROSS JOIN LATERAL (SELECT {STATUS}) AS s(status)"
        f" CROSS JOIN LATERAL (SELECT 100 + (g::bigint * 7919) % 20000) AS m(amount)"
    )
    paid = f"s.status IN {PAID_STATUSES}"
    clone(
        cursor,
        Order,
        order.pk,
        series,
        {
            "public_id": f"'ord_' || lpad((extract(epoch FROM a.at) * 1000)::bigint::text, 13, '0') || '{number}'"
            " || lpad(g::text, 12, '0')",
            "reference": "'REF-' || lpad(g::text, 9, '0')",
            "description": "'Order ' || g",
            "amount": "m.amount",
            "status": "s.status",
            "paid_amount": f"CASE WHEN {paid} THEN m.amount ELSE 0 END",
            "refunded_amount": "CASE s.status WHEN 'refunded' THEN m.amount WHEN 'partially_refunded'"
            " THEN m.amount / 2 ELSE 0 END",
            "paid_at": f"CASE WHEN {paid} THEN a.at + interval '1 minute' END",
            "expires_at": "a.at + interval '15 minutes'",
            "created_at": "a.at",
            "updated_at": "a.at + interval '1 minute'",
        },
    )
    orders = cursor.db.ops.quote_name(Order._meta.db_table)
    cursor.execute(f"ANALYZE {orders}")  # fresh statistics, or the joins below loop over every payment per order
    clone(
        cursor,
        Payment,
        payment.pk,
        f"{orders} AS o",
        {
            "public_id": "'pay_' || substring(o.public_id FROM 5)",
            "order_id": "o.id",
            "payment_request_id": "'req_' || substring(o.public_id FROM 5)",
            "wallet_payment_id": "CASE o.status WHEN 'pending' THEN '' ELSE '2026' || lpad(o.id::text, 16, '0') END",
            "amount": "o.amount",
            "status": PAYMENT_STATUS,
            "created_at": "o.created_at",
            "updated_at": "o.updated_at",
        },
        where=ours,
    )
    payments = cursor.db.ops.quote_name(Payment._meta.db_table)
    cursor.execute(f"ANALYZE {payments}")
    joined = f"{orders} AS o JOIN {payments} AS p ON p.order_id = o.id"
    for prefix, overrides in (
        ("evta", {"payment_id": "NULL", "subject": "'order'", "from_status": "''", "to_status": "'pending'"}),
        ("evtb", {"subject": "'payment'", "from_status": "'pending'", "to_status": "p.status"}),
        ("evtc", {"payment_id": "NULL", "subject": "'order'", "from_status": "'pending'", "to_status": "o.status"}),
    ):
        minutes = 0 if prefix == "evta" else 1
        clone(
            cursor,
            PaymentEvent,
            event.pk,
            joined,
            {
                "public_id": f"'{prefix}_' || substring(o.public_id FROM 5)",
                "order_id": "o.id",
                "payment_id": "p.id",
                "source": "'api'" if minutes == 0 else "'wallet_notification'",
                "created_at": f"o.created_at + interval '{minutes} minute'",
                **overrides,
            },
            where=f"{ours} AND right(o.reference, 1) = '0'" + (" AND o.status <> 'pending'" if minutes else ""),
        )
    clone(
        cursor,
        InboundNotification,
        notification.pk,
        joined,
        {
            "public_id": "'ntf_' || substring(o.public_id FROM 5)",
            "subject": "p.payment_request_id",
            "dedupe_key": "'bench:' || p.payment_request_id",
            "received_at": "o.created_at + interval '1 minute'",
            "processed_at": "o.created_at + interval '1 minute'",
        },
        where=f"{ours} AND p.status IN ('succeeded', 'failed')",
    )
    clone(
        cursor,
        WebhookEvent,
        webhook.pk,
        f"{orders} AS o",
        {
            "public_id": "'whe_' || substring(o.public_id FROM 5)",
            "data": "jsonb_build_object('id', o.public_id, 'object', 'order', 'status', 'paid')",
            "created_at": "o.created_at + interval '1 minute'",
        },
        where=f"{ours} AND o.status IN {PAID_STATUSES}",
    )


def measure(targets: dict, requests: int, warmup: int) -> dict:
    """Each page ``warmup`` times unmeasured, then ``requests`` times timed, then once with its queries counted."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from apps.accounts.models import User

    changelist = reverse("admin:payments_order_changelist")
    pages = {
        "first page": (changelist, {}),
        "filtered (paid, one week)": (
            changelist,
            {"status__exact": "paid", "created_at__gte": targets["since"], "created_at__lt": targets["until"]},
        ),
        "search: reference": (changelist, {"q": targets["reference"]}),
        "search: paymentId": (changelist, {"q": targets["payment_id"]}),
        "detail with timeline": (reverse("admin:payments_order_change", args=[targets["order"]]), {}),
    }
    client = Client()
    client.force_login(User.objects.get(username=targets["staff"]))
    measured = {}
    for name, (path, query) in pages.items():
        problems = []
        for _ in range(warmup):
            client.get(path, query)
        seconds = []
        for _ in range(requests):
            began = time.perf_counter()
            response = client.get(path, query)
            seconds.append(time.perf_counter() - began)
            if response.status_code != 200:
                problems.append(f"HTTP {response.status_code}")
                break
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, query)
        problems.extend(_check(name, response, targets))
        seconds.sort()
        measured[name] = {
            "p50_ms": statistics.median(seconds) * 1000,
            "p95_ms": percentile(seconds, 0.95) * 1000,
            "queries": sum(not q["sql"].startswith(TRANSACTION_CONTROL) for q in queries.captured_queries),
            "sql": [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(TRANSACTION_CONTROL)],
            "problems": problems,
        }
    return measured


def _check(name: str, response, targets: dict) -> list[str]:
    """What the page must show, so a fast error page is never taken for a fast page."""
    if response.status_code != 200:
        return [f"HTTP {response.status_code}: {response.content[:300]!r}"]
    context = response.context_data or {}
    if name == "detail with timeline":
        entries = len(context.get("timeline", []))
        return [] if entries >= 5 else [f"the timeline has {entries} entries, at least 5 expected"]
    shown = len(context["cl"].result_list)
    if name.startswith("search"):
        found = [order.reference for order in context["cl"].result_list]
        return [] if found == [targets["reference"]] else [f"found {found}, expected [{targets['reference']!r}]"]
    return [] if shown == 100 else [f"{shown} orders on the page, 100 expected"]


if __name__ == "__main__":
    main()
