"""Reading a settlement file: one streaming pass that checks every line, one that yields the rows to load.

A file is all or nothing: any malformed line rejects it, and every problem is told with its line number
(line 1 is the header). Memory stays constant whatever the file's size.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import io
import re
from collections.abc import Iterator
from typing import IO

COLUMNS = (
    "record_type",
    "payment_id",
    "payment_request_id",
    "refund_id",
    "refund_request_id",
    "currency",
    "amount",
    "fee",
    "net",
    "transaction_time",
    "settlement_date",
)
MAX_REPORTED_ERRORS = 100
# The rules ``staging`` checks in PostgreSQL, so both accept exactly the same lines: integers written plainly
# (no "+", no leading zeros), times to the second (fractions allowed) with "Z" or an offset.
_INTEGER = re.compile(r"0|-?[1-9][0-9]{0,17}")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    line_no: int
    record_type: str
    wallet_payment_id: str
    payment_request_id: str
    wallet_refund_id: str
    refund_request_id: str
    currency: str
    amount: int
    fee: int
    net: int
    transaction_time: dt.datetime


@dataclasses.dataclass
class Verdict:
    lines: int = 0
    error_count: int = 0
    errors: list[dict] = dataclasses.field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "message": message})


@contextlib.contextmanager
def _text(binary: IO[bytes]) -> Iterator[io.TextIOWrapper]:
    """The bytes as text, handing the stream back open afterwards (a wrapper closes what it wraps)."""
    text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
    try:
        yield text
    finally:
        text.detach()


def validate(binary: IO[bytes], *, day: dt.date) -> Verdict:
    """Check every line of the file against the format (columns, types, signs, the file's date)."""
    with _text(binary) as text:
        return _check(csv.reader(text), day)


def _check(reader, day: dt.date) -> Verdict:
    verdict = Verdict()
    line_no = 1
    try:
        header = next(reader, None)
        if header is None:
            verdict.add(1, "the file is empty (no header)")
            return verdict
        if tuple(header) != COLUMNS:
            verdict.add(1, f"the header is not {','.join(COLUMNS)}")
            return verdict
        for line_no, fields in enumerate(reader, start=2):
            verdict.lines += 1
            try:
                _parse(fields, line_no, day)
            except ValueError as problem:
                verdict.add(line_no, str(problem))
    except UnicodeDecodeError:
        verdict.add(line_no + 1, "not UTF-8 text")
    except csv.Error as error:
        verdict.add(reader.line_num, f"unreadable CSV ({error})")
    return verdict


def rows(binary: IO[bytes], *, day: dt.date) -> Iterator[Row]:
    """The lines of a file ``validate`` accepted, parsed."""
    with _text(binary) as text:
        reader = csv.reader(text)
        next(reader)
        for line_no, fields in enumerate(reader, start=2):
            yield _parse(fields, line_no, day)


def _parse(fields: list[str], line_no: int, day: dt.date) -> Row:
    if len(fields) != len(COLUMNS):
        raise ValueError(f"{len(fields)} fields, expected {len(COLUMNS)}")
    values = dict(zip(COLUMNS, fields, strict=True))
    record_type = values["record_type"]
    if record_type not in ("PAYMENT", "REFUND"):
        raise ValueError(f"record_type {record_type!r} is neither PAYMENT nor REFUND")
    for name in ("payment_id", "payment_request_id"):
        if not values[name] or len(values[name]) > 64:
            raise ValueError(f"{name} must have 1 to 64 characters")
    for name in ("refund_id", "refund_request_id"):
        if len(values[name]) > 64:
            raise ValueError(f"{name} is longer than 64 characters")
        if record_type == "PAYMENT" and values[name]:
            raise ValueError(f"a PAYMENT has no {name}")
    if not _CURRENCY.fullmatch(values["currency"]):
        raise ValueError(f"currency {values['currency']!r} is not an ISO 4217 code")
    numbers = {}
    for name in ("amount", "fee", "net"):
        if not _INTEGER.fullmatch(values[name]):
            raise ValueError(f"{name} {values[name]!r} is not an integer in minor units")
        numbers[name] = int(values[name])
    if record_type == "PAYMENT" and numbers["amount"] <= 0:
        raise ValueError("a PAYMENT's amount must be positive")
    if record_type == "REFUND" and numbers["amount"] >= 0:
        raise ValueError("a REFUND's amount must be negative")
    if not _TIMESTAMP.fullmatch(values["transaction_time"]):
        raise ValueError(
            f"transaction_time {values['transaction_time']!r} is not ISO 8601 with a UTC offset"
            " (2026-11-21T09:30:00+08:00, or …Z)"
        )
    try:
        moment = dt.datetime.fromisoformat(values["transaction_time"].replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"transaction_time {values['transaction_time']!r} is not a date and time") from None
    if values["settlement_date"] != day.isoformat():
        raise ValueError(f"settlement_date {values['settlement_date']!r} is not the file's date {day}")
    return Row(
        line_no=line_no,
        record_type=record_type,
        wallet_payment_id=values["payment_id"],
        payment_request_id=values["payment_request_id"],
        wallet_refund_id=values["refund_id"],
        refund_request_id=values["refund_request_id"],
        currency=values["currency"],
        amount=numbers["amount"],
        fee=numbers["fee"],
        net=numbers["net"],
        transaction_time=moment.astimezone(dt.UTC),
    )
