"""The child processes of bench/reconcile.py, each measured on its own (wall seconds, peak RSS).

    python -m bench.reconcile_setup ledger LINES EACH FILE   ledger rows and the settlement file; JSON
    python -m bench.reconcile_setup run FILE EACH            reconciliation_run on FILE, checked; JSON
    python -m bench.reconcile_setup floor DSN FILE TABLE          COPY into a bare table + one hash join; JSON

``ledger`` and ``run`` need Django (``bench.settings`` and ``DATABASE_URL``); ``floor`` is psycopg only.

The ledger: Demo Coffee's paymentUrl mini program, one template order and payment made by the ORM, then every
other row by ``INSERT … SELECT`` over ``generate_series`` (copying the template's columns), and the file by
``COPY (SELECT …) TO STDOUT`` from those rows. Injected, ``EACH`` of every reason the service detects:

- ``missing_in_platform``: lines whose payment the ledger has never heard of (``ghost-…``);
- ``missing_in_wallet``: succeeded payments of the morning with no line (``unsettled-…``);
- ``timing_cutoff``: succeeded payments paid at 23:55 with no line (``cutoff-…``);
- ``amount_mismatch``: lines one minor unit above the payment (``amount-…``);
- ``currency_mismatch``: EUR lines for USD payments (``currency-…``);
- ``status_mismatch``: lines for payments the ledger has as failed (``failed-…``), which no inquiry settles;
- ``duplicate_in_file``: a second line for clean payments (``clean-…`` right after the refunded ones);
- ``refund_mismatch``: refund lines one minor unit off (the first refunds, ``r-…``);
- ``fee_unexpected``: lines whose net is not amount - fee (``fee-…``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time

from bench.harness import clone

DAY = dt.date(2026, 11, 21)
MINI_PROGRAM = "demo-coffee-app"
FEE = "(({a}) * 150 + 5000) / 10000"  # 1.5 %, rounded, in minor units, as the sandbox charges
REFUND_AMOUNT = 100
WIDTH = 9  # digits of the numbered ids: prefix-000000001


def main() -> None:
    command, *rest = sys.argv[1:]
    if command == "floor":
        print(json.dumps(floor(*rest[:3])))
        return
    import django

    django.setup()
    if command == "ledger":
        print(json.dumps(ledger(int(rest[0]), int(rest[1]), rest[2])))
    elif command == "run":
        print(json.dumps(run(rest[0], int(rest[1]))))
    else:
        raise SystemExit(__doc__)


def plan(lines: int, each: int) -> dict:
    """How many rows of each kind make a file of ``lines`` lines with ``each`` discrepancies per reason."""
    refunds = lines // 20
    clean = lines - refunds - 6 * each  # ghost, amount, currency, failed, duplicate and fee lines are the rest
    if clean < refunds + each or refunds < each:
        raise SystemExit(f"{lines} lines are too few for {each} discrepancies of each reason")
    return {"clean": clean, "refunds": refunds, "each": each}


def _rid(prefix: str, number: int) -> str:
    return f"{prefix}-{number:0{WIDTH}d}"


def expected(lines: int, each: int) -> set[tuple[str, str]]:
    counts = plan(lines, each)
    blocks = {
        "missing_in_platform": "ghost",
        "missing_in_wallet": "unsettled",
        "timing_cutoff": "cutoff",
        "amount_mismatch": "amount",
        "currency_mismatch": "currency",
        "status_mismatch": "failed",
        "refund_mismatch": "r",
        "fee_unexpected": "fee",
    }
    found = {(reason, _rid(prefix, n)) for reason, prefix in blocks.items() for n in range(1, each + 1)}
    first_duplicate = counts["refunds"] + 1
    found |= {("duplicate_in_file", _rid("clean", n)) for n in range(first_duplicate, first_duplicate + each)}
    return found


def ledger(lines: int, each: int, path: str) -> dict:
    from django.db import connection, transaction
    from django.utils import timezone

    from apps.miniprograms.models import MiniProgram
    from apps.payments.models import Order, OrderStatus, Payment, PaymentStatus, Refund, RefundStatus

    counts = plan(lines, each)
    started = time.perf_counter()
    # Benchmark setup in the one demo tenant: no principal to scope by.
    mini_program = MiniProgram.objects.unscoped().select_related("super_app").get(app_id=MINI_PROGRAM)
    morning = dt.datetime.combine(DAY, dt.time(1), dt.UTC)
    tenant = {"isv_id": mini_program.isv_id, "merchant_id": mini_program.merchant_id}
    with transaction.atomic():
        order = Order.objects.unscoped().create(
            **tenant,
            mini_program=mini_program,
            description="bench template",
            reference="template",
            amount=1000,
            currency="USD",
            status=OrderStatus.PAID,
            paid_amount=1000,
            paid_at=morning - dt.timedelta(days=5),
            expires_at=timezone.now(),
        )
        payment = Payment.objects.unscoped().create(
            **tenant,
            order=order,
            payment_request_id="template",
            wallet_payment_id="W-template",
            amount=1000,
            trade_pay_mode=mini_program.trade_pay_mode,
            status=PaymentStatus.SUCCEEDED,
        )
        refund = Refund.objects.unscoped().create(
            **tenant,
            order=order,
            payment=payment,
            refund_request_id="template",
            wallet_refund_id="WR-template",
            amount=REFUND_AMOUNT,
            currency="USD",
            status=RefundStatus.SUCCEEDED,
        )
    tables = {model: connection.ops.quote_name(model._meta.db_table) for model in (Order, Payment, Refund)}
    cutoff = dt.datetime.combine(DAY, dt.time(23, 55), dt.UTC)
    blocks = [  # prefix, count, order status, payment status, paid at
        ("clean", counts["clean"], OrderStatus.PAID, PaymentStatus.SUCCEEDED, morning),
        ("amount", each, OrderStatus.PAID, PaymentStatus.SUCCEEDED, morning),
        ("currency", each, OrderStatus.PAID, PaymentStatus.SUCCEEDED, morning),
        ("fee", each, OrderStatus.PAID, PaymentStatus.SUCCEEDED, morning),
        ("unsettled", each, OrderStatus.PAID, PaymentStatus.SUCCEEDED, morning),
        ("cutoff", each, OrderStatus.PAID, PaymentStatus.SUCCEEDED, cutoff),
        ("failed", each, OrderStatus.PROCESSING, PaymentStatus.FAILED, None),
    ]
    amount = "(1000 + g % 9000)"
    with transaction.atomic(), connection.cursor() as cursor:
        for prefix, count, order_status, payment_status, paid_at in blocks:
            rid = f"'{prefix}-' || lpad(g::text, {WIDTH}, '0')"
            succeeded = payment_status == PaymentStatus.SUCCEEDED
            clone(
                cursor,
                Order,
                order.pk,
                f"generate_series(1, {count}) AS g",
                {
                    "public_id": f"'ord_b{prefix}' || g",
                    "reference": rid,
                    "description": rid,
                    "amount": amount,
                    "paid_amount": amount if succeeded else "0",
                    "status": f"'{order_status}'",
                    "paid_at": f"'{paid_at.isoformat()}'::timestamptz" if paid_at else "NULL",
                },
            )
            clone(
                cursor,
                Payment,
                payment.pk,
                f"{tables[Order]} AS o CROSS JOIN LATERAL (SELECT substring(o.reference FROM '[0-9]+$')::int) AS n(g)",
                {
                    "public_id": f"'pay_b{prefix}' || g",
                    "order_id": "o.id",
                    "payment_request_id": "o.reference",
                    "wallet_payment_id": "'W-' || o.reference",
                    "amount": "o.amount",
                    "status": f"'{payment_status}'",
                },
                where=f"o.reference LIKE '{prefix}-%'",
            )
        clone(
            cursor,
            Refund,
            refund.pk,
            f"{tables[Payment]} AS p CROSS JOIN LATERAL (SELECT substring(p.payment_request_id FROM '[0-9]+$')::int)"
            " AS n(g)",
            {
                "public_id": "'ref_b' || g",
                "order_id": "p.order_id",
                "payment_id": "p.id",
                "refund_request_id": f"'r-' || lpad(g::text, {WIDTH}, '0')",
                "wallet_refund_id": f"'WR-r-' || lpad(g::text, {WIDTH}, '0')",
            },
            where=f"p.payment_request_id BETWEEN '{_rid('clean', 1)}' AND '{_rid('clean', counts['refunds'])}'",
        )
        cursor.execute(
            f"UPDATE {tables[Order]} o SET refunded_amount = {REFUND_AMOUNT} FROM {tables[Refund]} r"
            " WHERE r.order_id = o.id AND r.refund_request_id LIKE 'r-%'"
        )
    ledger_seconds = time.perf_counter() - started
    started = time.perf_counter()
    _write_file(connection, tables, counts, path)
    for table in tables.values():
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")
    return {
        "ledger_seconds": ledger_seconds,
        "file_seconds": time.perf_counter() - started,
        "file_bytes": os.path.getsize(path),
        "payment_table": Payment._meta.db_table,
        **counts,
    }


def _write_file(connection, tables: dict, counts: dict, path: str) -> None:
    """The settlement file as the sandbox writes it, by ``COPY (SELECT …) TO STDOUT``: one line per settled
    payment and refund, the injected lines among them, in an order that mixes the kinds."""
    from apps.payments.models import Order, Payment, Refund
    from apps.reconciliation.parsing import COLUMNS

    each, day = counts["each"], DAY.isoformat()
    morning = f"'{day}T01:00:00Z'"
    first_duplicate, last_duplicate = counts["refunds"] + 1, counts["refunds"] + each
    fee = FEE.format(a="a")
    payment_lines = f"""
        SELECT 'PAYMENT' AS record_type, p.wallet_payment_id AS payment_id, p.payment_request_id,
               '' AS refund_id, '' AS refund_request_id,
               CASE WHEN p.payment_request_id LIKE 'currency-%' THEN 'EUR' ELSE o.currency END AS currency,
               a AS amount, {fee} AS fee,
               CASE WHEN p.payment_request_id LIKE 'fee-%' THEN a ELSE a - {fee} END AS net,
               {morning} AS transaction_time, '{day}' AS settlement_date, p.payment_request_id AS k
        FROM {tables[Payment]} p JOIN {tables[Order]} o ON o.id = p.order_id
        CROSS JOIN LATERAL (SELECT p.amount + CASE WHEN p.payment_request_id LIKE 'amount-%' THEN 1 ELSE 0 END) AS x(a)
        WHERE p.payment_request_id ~ '^(clean|amount|currency|fee|failed)-'
    """
    duplicates = f"""
        SELECT 'PAYMENT', p.wallet_payment_id, p.payment_request_id, '', '', 'USD', p.amount,
               {FEE.format(a="p.amount")}, p.amount - {FEE.format(a="p.amount")}, {morning}, '{day}',
               p.payment_request_id || '~'
        FROM {tables[Payment]} p
        WHERE p.payment_request_id BETWEEN '{_rid("clean", first_duplicate)}' AND '{_rid("clean", last_duplicate)}'
    """
    ghosts = f"""
        SELECT 'PAYMENT', 'W-ghost-' || lpad(g::text, {WIDTH}, '0'), 'ghost-' || lpad(g::text, {WIDTH}, '0'),
               '', '', 'USD', 1500, {FEE.format(a="1500")}, 1500 - {FEE.format(a="1500")}, {morning}, '{day}',
               'ghost-' || g
        FROM generate_series(1, {each}) AS g
    """
    refund_lines = f"""
        SELECT 'REFUND', p.wallet_payment_id, p.payment_request_id, r.wallet_refund_id, r.refund_request_id,
               r.currency, -b, 0, -b, '{day}T02:00:00Z', '{day}', r.refund_request_id
        FROM {tables[Refund]} r JOIN {tables[Payment]} p ON p.id = r.payment_id
        CROSS JOIN LATERAL (SELECT r.amount + CASE WHEN r.refund_request_id <= '{_rid("r", each)}' THEN 1 ELSE 0 END)
            AS x(b)
        WHERE r.refund_request_id LIKE 'r-%'
    """
    names = ", ".join(COLUMNS)
    query = (
        f"COPY (SELECT {names} FROM ({payment_lines} UNION ALL {duplicates} UNION ALL {ghosts}"
        f" UNION ALL {refund_lines}) AS lines ORDER BY md5(k)) TO STDOUT WITH (FORMAT csv)"
    )
    with connection.cursor() as cursor, open(path, "wb") as out:
        out.write((",".join(COLUMNS) + "\n").encode())
        with cursor.cursor.copy(query) as copy:
            for chunk in copy:
                out.write(chunk)


def run(path: str, each: int) -> dict:
    """``reconciliation_run`` on the file, as an upload; then whether it found exactly what was injected."""
    import resource

    from apps.core.tenancy import Principal
    from apps.merchants.models import WalletCredential
    from apps.miniprograms.models import MiniProgram
    from apps.reconciliation.models import Discrepancy, RunStatus
    from apps.reconciliation.services import reconciliation_run

    mini_program = MiniProgram.objects.unscoped().select_related("super_app").get(app_id=MINI_PROGRAM)
    credential = WalletCredential.objects.unscoped().get(
        merchant_id=mini_program.merchant_id, super_app=mini_program.super_app
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    marks = {}  # the moment each step reported being done, from the service's own progress callback

    def progress(step: str, done: int, total: int) -> None:
        if step == "match" or done == total:
            marks.setdefault(f"{step} {done}/{total}" if step == "match" else step, time.perf_counter() - started)

    result = reconciliation_run(
        super_app=mini_program.super_app, day=DAY, credential=credential, file_path=path, progress=progress
    )
    seconds = time.perf_counter() - started
    found = set()
    for reason, wallet, platform in (
        Discrepancy.objects.visible_to(Principal.operator())
        .filter(run=result)
        .values_list("reason", "wallet", "platform")
        .iterator()
    ):
        if wallet:
            found.add((reason, wallet["refund_request_id"] or wallet["payment_request_id"]))
        else:
            found.add((reason, platform["payment"]["payment_request_id"]))
    lines = sum(1 for _ in open(path, "rb")) - 1  # noqa: SIM115 - read once, closed by the collector
    wanted = expected(lines, each)
    total = Discrepancy.objects.visible_to(Principal.operator()).filter(run=result).count()
    problems = []
    if result.status != RunStatus.SUCCEEDED:
        problems.append(f"run {result.status}: {result.errors}")
    if result.counts.get("lines") != lines:
        problems.append(f"{result.counts.get('lines')} lines loaded, the file has {lines}")
    if total != len(wanted):
        problems.append(f"{total} discrepancies recorded, {len(wanted)} injected")
    if missed := wanted - found:
        problems.append(f"not found: {sorted(missed)[:5]} ({len(missed)})")
    if extra := found - wanted:
        problems.append(f"not injected: {sorted(extra)[:5]} ({len(extra)})")
    return {
        "seconds": seconds,
        "rss_before_kb": before,
        "counts": result.counts,
        "duration_ms": result.duration_ms,
        "steps": marks,
        "problems": problems,
    }


def floor(dsn: str, path: str, table: str) -> dict:
    """The least reconciling this file can cost: ``COPY`` into a bare table, one hash join with the payments."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(dsn) as connection:
        connection.execute(
            "CREATE TEMPORARY TABLE bare (record_type text, payment_id text, payment_request_id text, refund_id text,"
            " refund_request_id text, currency text, amount bigint, fee bigint, net bigint,"
            " transaction_time timestamptz, settlement_date date)"
        )
        with (
            open(path, "rb") as source,
            connection.cursor().copy("COPY bare FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        ):
            while chunk := source.read(1 << 20):
                copy.write(chunk)
        loaded = time.perf_counter()
        connection.execute("ANALYZE bare")
        connection.execute("SET enable_mergejoin = off; SET enable_nestloop = off")
        matched, differing = connection.execute(
            f"SELECT count(p.id), count(*) FILTER (WHERE p.id IS NULL OR b.amount <> p.amount) FROM bare b"
            f' LEFT JOIN "{table}" AS p ON p.payment_request_id = b.payment_request_id'
        ).fetchone()
    return {
        "seconds": time.perf_counter() - started,
        "copy_seconds": loaded - started,
        "matched": matched,
        "differing": differing,
    }


if __name__ == "__main__":
    main()
