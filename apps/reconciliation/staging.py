"""Loading a settlement file on PostgreSQL without reading its lines in Python.

The file's bytes go by ``COPY`` into a temporary table of text columns (PostgreSQL parses the CSV); one scan
checks every line against the same rules as ``parsing``; one ``INSERT … SELECT`` then writes the typed lines,
each already linked to its payment and refund by our request ids (hash joins) and marked when it repeats an
earlier line. A file that fails anywhere raises ``Malformed``: the caller rolls back and lets ``parsing``
name the lines, so the report is the same on every database.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from typing import IO

import psycopg
from django.db import connection
from django.db.models import QuerySet

from . import parsing
from .models import ReconciliationRun, SettlementLine

CHUNK_BYTES = 1 << 20
WORK_MEM = "256MB"


class Malformed(Exception):
    """The file does not load as it is; ``detail`` is PostgreSQL's word on the first problem, if it had one."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


# Every check of ``parsing._parse``, written to be cheap on a million lines (a regular expression per column
# would cost more than the rest of the load). Text that only looks right (a 30 February, digits that overflow)
# fails the casts in ``_INSERT``, which rejects the file just the same. Casts sit behind CASE where text that
# is not digits may reach them: PostgreSQL does not promise the order in which AND evaluates its operands.
_WELL_FORMED = """
    record_type IN ('PAYMENT', 'REFUND')
    AND length(payment_id) BETWEEN 1 AND 64
    AND length(payment_request_id) BETWEEN 1 AND 64
    AND coalesce(length(refund_id), 0) <= 64
    AND coalesce(length(refund_request_id), 0) <= 64
    AND (record_type = 'REFUND' OR (coalesce(refund_id, '') = '' AND coalesce(refund_request_id, '') = ''))
    AND length(currency) = 3 AND translate(currency, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', '') = ''
    AND CASE WHEN translate(amount || fee || net, '0123456789-', '') = ''
            AND length(ltrim(amount, '-')) BETWEEN 1 AND 18
            AND length(ltrim(fee, '-')) BETWEEN 1 AND 18
            AND length(ltrim(net, '-')) BETWEEN 1 AND 18
        THEN amount::bigint::text = amount AND fee::bigint::text = fee AND net::bigint::text = net
            AND CASE record_type WHEN 'PAYMENT' THEN amount::bigint > 0 ELSE amount::bigint < 0 END
        ELSE false END
    AND transaction_time LIKE '____-__-__T__:__:__%%'
    AND translate(transaction_time, '0123456789', '')
        IN ('--T::Z', '--T::+:', '--T::-:', '--T::.Z', '--T::.+:', '--T::.-:')
    AND CASE WHEN right(transaction_time, 1) = 'Z' THEN length(transaction_time) - 1
        WHEN substr(transaction_time, length(transaction_time) - 5, 1) IN ('+', '-')
            AND substr(transaction_time, length(transaction_time) - 2, 1) = ':'
        THEN length(transaction_time) - 6 END IN (19, 21, 22, 23, 24, 25, 26)
    AND substr(transaction_time, 20, 1) IN ('.', 'Z', '+', '-')
    AND settlement_date = %s
"""

# Lines linked by our request ids: the ledger querysets are the tenant's own (``visible_to``), compiled in.
# Placeholders are positional: the run's three, then the payments', then the refunds'.
_INSERT = """
    INSERT INTO {lines} (
        run_id, isv_id, merchant_id, line_no, record_type, wallet_payment_id, payment_request_id,
        wallet_refund_id, refund_request_id, currency, amount, fee, net, transaction_time,
        payment_id, refund_id, duplicate
    )
    SELECT
        %s, %s, coalesce(r.merchant_id, p.merchant_id, %s), raw.line_no, raw.record_type,
        raw.payment_id, raw.payment_request_id, coalesce(raw.refund_id, ''), coalesce(raw.refund_request_id, ''),
        raw.currency, raw.amount::bigint, raw.fee::bigint, raw.net::bigint,
        replace(raw.transaction_time, 'Z', '+00:00')::timestamptz,
        p.id, r.id, coalesce(raw.line_no > repeated.first, false)
    FROM {raw} AS raw
    LEFT JOIN (
        SELECT record_type, payment_request_id, coalesce(refund_request_id, '') AS refund_request_id,
            min(line_no) AS first
        FROM {raw} GROUP BY 1, 2, 3 HAVING count(*) > 1
    ) AS repeated ON repeated.record_type = raw.record_type
        AND repeated.payment_request_id = raw.payment_request_id
        AND repeated.refund_request_id = coalesce(raw.refund_request_id, '')
    LEFT JOIN ({payments}) AS p ON p.payment_request_id = raw.payment_request_id
    LEFT JOIN ({refunds}) AS r ON raw.record_type = 'REFUND' AND r.refund_request_id = raw.refund_request_id
"""


def load(
    run: ReconciliationRun,
    stream: IO[bytes],
    *,
    day: dt.date,
    payments: QuerySet,
    refunds: QuerySet,
    progress: Callable[[str, int, int], None],
    size: int,
) -> int:
    """Load and link the file's lines for ``run``; the number of lines. Raises ``Malformed``. To be called
    inside a transaction, which a ``Malformed`` must roll back."""
    header = next(csv.reader([stream.readline().decode("utf-8", "replace")]), None)
    if tuple(header or ()) != parsing.COLUMNS:
        raise Malformed()
    raw = connection.ops.quote_name(f"reconciliation_raw_{run.pk}")
    columns = ", ".join(parsing.COLUMNS)
    with connection.cursor() as cursor:
        text_columns = ", ".join(f"{name} text" for name in parsing.COLUMNS)
        # For this transaction only: sorts and hashes of a million lines fit in the server's memory, and the
        # matching query read through a cursor is planned to be read to the end (not for its first rows).
        cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        cursor.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {raw} (line_no integer GENERATED ALWAYS AS IDENTITY (START WITH 2 CACHE 10000),"
            f" {text_columns}) ON COMMIT DROP"
        )
        try:
            with cursor.cursor.copy(f"COPY {raw} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
                done = stream.tell()
                while chunk := stream.read(CHUNK_BYTES):
                    copy.write(chunk)
                    done += len(chunk)
                    progress("import", done, size)
        except psycopg.Error as error:  # a line PostgreSQL's CSV reader refuses, bytes that are not UTF-8, …
            raise Malformed(_first_line(error)) from None
        cursor.execute(f"ANALYZE {raw}")  # so the joins below are planned for the file's real size
        cursor.execute(
            f"SELECT count(*), count(*) FILTER (WHERE NOT coalesce({_WELL_FORMED}, false)) FROM {raw}",  # noqa: S608 - our own identifiers; the day is a parameter
            [day.isoformat()],
        )
        total, bad = cursor.fetchone()
        progress("validate", total, total)
        if bad:
            raise Malformed()
        payments_sql, payments_params = payments.values(
            "id", "merchant_id", "payment_request_id"
        ).query.sql_with_params()
        refunds_sql, refunds_params = refunds.values("id", "merchant_id", "refund_request_id").query.sql_with_params()
        cursor.execute(
            _INSERT.format(
                lines=connection.ops.quote_name(SettlementLine._meta.db_table),
                raw=raw,
                payments=payments_sql,
                refunds=refunds_sql,
            ),
            [run.pk, run.isv_id, run.merchant_id, *payments_params, *refunds_params],
        )
        cursor.execute(f"DROP TABLE {raw}")
        # The matching queries that follow are planned on the table's statistics, which do not yet know of
        # these lines: without this they are estimated at one row and joined by a million index lookups.
        cursor.execute(f"ANALYZE {connection.ops.quote_name(SettlementLine._meta.db_table)}")
    return total


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
