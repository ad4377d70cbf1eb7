"""Reconciliation: fetch a day's settlement file, load it, match it against the ledger, explain every difference.

A run is per credential (one client id at one super app) and per settlement day. The steps:

1. the file is stored once per checksum (``settlement_file_store``); the same bytes again give the earlier run;
2. every line is checked before anything is loaded; one malformed line rejects the file (a ``rejected`` run
   listing the lines, and nothing else written);
3. lines are loaded into the staging table (``COPY`` on PostgreSQL, batches elsewhere) and matched against
   payments and refunds by a few UPDATEs and one query per reason, never a query per line;
4. what the wallet settled while the ledger still waits (a payment or refund still processing) is settled
   after the run's own transaction: by applying a notification about it that the inbox received but never
   applied, else by an inquiry through the payments services;
5. ``timing_cutoff`` discrepancies of earlier runs whose payment shows up in this file are closed.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable

from django.core.files import File
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    ExpressionWrapper,
    F,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.utils import timezone

from apps.callbacks.models import InboundNotification, NotificationKind, NotificationStatus
from apps.callbacks.services import NotRetryable, notification_retry
from apps.core.errors import ApplicationError
from apps.core.tenancy import Principal
from apps.merchants.models import WalletCredential
from apps.payments.models import OrderStatus, Payment, PaymentEvent, PaymentStatus, Refund, RefundStatus
from apps.payments.services import order_refresh, refund_refresh
from apps.superapps.models import SuperApp, TradePayMode

from . import parsing, staging
from .models import (
    Discrepancy,
    DiscrepancyStatus,
    FileSource,
    Reason,
    ReconciliationRun,
    RecordType,
    RunStatus,
    SettlementFile,
    SettlementLine,
)
from .transports import FileUnavailable, transport_for

logger = logging.getLogger(__name__)

# A payment the platform saw succeed this close to midnight (UTC) may settle in the next day's file.
TIMING_CUTOFF_WINDOW = dt.timedelta(minutes=30)
BATCH_SIZE = 2000
# Longer than the reconcile task's time limit: a run still "running" after this was abandoned.
RUN_ABANDONED_AFTER = dt.timedelta(hours=2)
# How far back a payment the ledger dates today may already have settled.
SETTLED_BEFORE_DAYS = dt.timedelta(days=2)
OPEN_PAYMENT_STATUSES = (PaymentStatus.INITIATED, PaymentStatus.PENDING, PaymentStatus.UNKNOWN)

Progress = Callable[[str, int, int], None]  # (step, done, total)


def _scope(credential: WalletCredential) -> Principal:
    """The tenant a credential's files belong to: its merchant, or its whole ISV."""
    return Principal.system(isv_id=credential.isv_id, merchant_id=credential.merchant_id)


def credentials_of(*, super_app: SuperApp, client_id: str | None = None) -> list[WalletCredential]:
    # Batch work over every tenant holding a client id at the super app: each file is then handled in its scope.
    credentials = WalletCredential.objects.unscoped().filter(super_app=super_app).order_by("pk")
    if client_id:
        credentials = credentials.filter(client_id=client_id)
    return list(credentials.select_related("super_app"))


# --- files -----------------------------------------------------------------------------------------


def settlement_file_store(
    *, credential: WalletCredential, day: dt.date, path: str | os.PathLike, source: str
) -> tuple[SettlementFile, bool]:
    """Keep the file at ``path`` as ``credential``'s settlement file of ``day``; ``(file, created)``.

    The checksum is computed while streaming. The same bytes for the same client and day are kept once:
    the earlier row is returned (``created`` false), also when two callers race.
    """
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    sha256 = digest.hexdigest()
    scope = _scope(credential)
    existing = SettlementFile.objects.visible_to(scope).filter(
        super_app_id=credential.super_app_id, client_id=credential.client_id, settlement_date=day, sha256=sha256
    )
    if found := existing.first():
        return found, False
    row = SettlementFile(
        isv_id=credential.isv_id,
        merchant_id=credential.merchant_id,
        super_app_id=credential.super_app_id,
        credential=credential,
        client_id=credential.client_id,
        settlement_date=day,
        sha256=sha256,
        size=size,
        source=source,
        fetched_at=timezone.now(),
    )
    with open(path, "rb") as stream:
        row.content.save(f"{credential.client_id}-{day.isoformat()}-{sha256[:12]}.csv", File(stream), save=False)
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        row.content.delete(save=False)
        return existing.get(), False
    return row, True


def settlement_fetch(*, credential: WalletCredential, day: dt.date) -> tuple[SettlementFile, bool]:
    """Download ``credential``'s settlement file of ``day`` through the super app's transport and keep it.

    Raises ``reconciliation.file_missing`` (the file is not there, or could not be had: late, refused, or
    an answer that does not verify); nothing is kept then.
    """
    transport = transport_for(credential.super_app.code)
    with tempfile.NamedTemporaryFile(suffix=".csv") as spool:
        try:
            transport.download(credential=credential, day=day, destination=spool)
        except FileUnavailable as unavailable:
            raise ApplicationError(
                "reconciliation.file_missing",
                f"no settlement file of {day} for {credential.client_id}: {unavailable}",
            ) from None
        spool.flush()
        return settlement_file_store(credential=credential, day=day, path=spool.name, source=FileSource.FETCH)


# --- runs ------------------------------------------------------------------------------------------


def reconciliation_run(
    *,
    super_app: SuperApp,
    day: dt.date,
    credential: WalletCredential | None = None,
    file_path: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> ReconciliationRun:
    """Reconcile one client's settlement file of ``day`` against the ledger; the run, whatever its outcome.

    Without ``file_path`` the file is fetched from the super app. ``credential`` may be left out when the
    super app has exactly one (else ``reconciliation.credential_required``). Idempotent: a file already
    reconciled (same checksum, run succeeded or rejected) returns that run and changes nothing. A missing
    file gives a ``failed`` run with ``error_code`` ``reconciliation.file_missing``; a malformed one a
    ``rejected`` run listing its lines, with nothing imported.
    """
    if credential is None:
        credentials = credentials_of(super_app=super_app)
        if len(credentials) != 1:
            raise ApplicationError(
                "reconciliation.credential_required",
                f"{super_app.code} has {len(credentials)} client ids; name the one to reconcile",
                attr="credential",
            )
        credential = credentials[0]
    if credential.super_app_id != super_app.pk:
        raise ApplicationError("reconciliation.credential_required", "the credential is of another super app")
    progress = progress or (lambda step, done, total: None)
    started = timezone.now()
    try:
        if file_path is None:
            settlement_file, _ = settlement_fetch(credential=credential, day=day)
        else:
            settlement_file, _ = settlement_file_store(
                credential=credential, day=day, path=file_path, source=FileSource.UPLOAD
            )
    except ApplicationError as error:
        if error.code != "reconciliation.file_missing":
            raise
        logger.warning("reconciliation: %s", error.message)
        return _new_run(
            credential, day, None, started, status=RunStatus.FAILED, error_code=error.code, errors=[error.message]
        )

    run = _claim(credential, day, settlement_file, started)
    if run.status != RunStatus.RUNNING or run.started_at != started:
        return run  # this file was reconciled (or is being reconciled) already

    try:
        try:
            with transaction.atomic():
                lines = _import(run, settlement_file, credential, day, progress=progress)
                counts = _match(run, credential, day, lines=lines, progress=progress)
                totals = _totals(run, credential)
                counts["closed_earlier"] = _close_resolved_cutoffs(run, credential)
                counts["auto_resolved"] = 0
                _finish(run, status=RunStatus.SUCCEEDED, counts=counts, totals=totals)
        except (staging.Malformed, DataError) as malformed:
            return _reject(run, settlement_file, day, detail=getattr(malformed, "detail", "") or str(malformed))
    except Exception as error:
        # Recorded, then raised: the run's own writes were rolled back, so trying again starts afresh.
        logger.exception("reconciliation run %s failed", run.public_id)
        _finish(run, status=RunStatus.FAILED, error_code="reconciliation.error", errors=[repr(error)[:500]])
        raise
    # Inquiries come after the run is recorded: if one breaks, running again returns this run (nothing twice),
    # and what was not asked about stays open for a person.
    counts.update(_auto_resolve(run, credential, progress=progress))
    return _finish(run, status=RunStatus.SUCCEEDED, counts=counts)


def _new_run(credential, day, settlement_file, started, **fields) -> ReconciliationRun:
    finished = timezone.now() if fields.get("status", RunStatus.RUNNING) != RunStatus.RUNNING else None
    return ReconciliationRun.objects.create(
        isv_id=credential.isv_id,
        merchant_id=credential.merchant_id,
        super_app_id=credential.super_app_id,
        credential=credential,
        settlement_date=day,
        file=settlement_file,
        started_at=started,
        finished_at=finished,
        duration_ms=int((finished - started).total_seconds() * 1000) if finished else None,
        **fields,
    )


@transaction.atomic
def _claim(credential, day, settlement_file, started) -> ReconciliationRun:
    """The run of this file: an earlier one that ended (or is under way), else a new running one. A run
    still ``running`` long after any worker could be on it was abandoned (its writes rolled back with it)."""
    SettlementFile.objects.visible_to(_scope(credential)).select_for_update().get(pk=settlement_file.pk)
    ReconciliationRun.objects.visible_to(_scope(credential)).filter(
        file=settlement_file, status=RunStatus.RUNNING, started_at__lt=started - RUN_ABANDONED_AFTER
    ).update(status=RunStatus.FAILED, error_code="reconciliation.abandoned", finished_at=started, updated_at=started)
    earlier = (
        ReconciliationRun.objects.visible_to(_scope(credential))
        .filter(file=settlement_file, status__in=[RunStatus.SUCCEEDED, RunStatus.REJECTED, RunStatus.RUNNING])
        .order_by("pk")
        .first()
    )
    return earlier or _new_run(credential, day, settlement_file, started)


def _finish(run: ReconciliationRun, *, status: str, **fields) -> ReconciliationRun:
    run.finished_at = timezone.now()
    run.duration_ms = int((run.finished_at - run.started_at).total_seconds() * 1000)
    run.status = status
    for name, value in fields.items():
        setattr(run, name, value)
    run.save(update_fields=["finished_at", "duration_ms", "status", "updated_at", *fields])
    return run


def _reject(run: ReconciliationRun, settlement_file: SettlementFile, day: dt.date, *, detail: str):
    """A file that did not load: ``parsing`` names its lines (nothing of it was kept)."""
    with settlement_file.content.open("rb") as stream:
        verdict = parsing.validate(stream, day=day)
    errors = verdict.errors or [{"line": None, "message": detail.splitlines()[0][:300] if detail else "unreadable"}]
    return _finish(
        run,
        status=RunStatus.REJECTED,
        error_code="reconciliation.malformed_file",
        errors=errors,
        counts={"lines": verdict.lines, "malformed": verdict.error_count or 1},
    )


# --- loading ---------------------------------------------------------------------------------------


def _import(run: ReconciliationRun, settlement_file, credential, day: dt.date, *, progress: Progress) -> int:
    """Load the file's lines for ``run``, each linked to its payment and refund by our request ids; the number
    of lines. Raises ``staging.Malformed``. PostgreSQL does it all in the database (``staging``); elsewhere
    the lines are parsed here and written in batches."""
    payments, refunds = _ledger(credential)
    with settlement_file.content.open("rb") as stream:
        if connection.vendor == "postgresql":
            return staging.load(
                run, stream, day=day, payments=payments, refunds=refunds, progress=progress, size=settlement_file.size
            )
        verdict = parsing.validate(stream, day=day)
        if verdict.error_count:
            raise staging.Malformed()
        progress("validate", verdict.lines, verdict.lines)
        stream.seek(0)
        batch, done = [], 0
        for row in parsing.rows(stream, day=day):
            batch.append(
                SettlementLine(
                    run_id=run.pk,
                    isv_id=run.isv_id,
                    merchant_id=run.merchant_id,
                    **{field.name: getattr(row, field.name) for field in dataclasses.fields(row)},
                )
            )
            if len(batch) == BATCH_SIZE:
                SettlementLine.objects.bulk_create(batch)
                done += len(batch)
                batch.clear()
                progress("import", done, verdict.lines)
        SettlementLine.objects.bulk_create(batch)
        progress("import", verdict.lines, verdict.lines)
    lines = SettlementLine.objects.visible_to(_scope(credential)).filter(run=run)
    lines.update(payment=Subquery(payments.filter(payment_request_id=OuterRef("payment_request_id")).values("pk")[:1]))
    lines.filter(record_type=RecordType.REFUND).exclude(refund_request_id="").update(
        refund=Subquery(refunds.filter(refund_request_id=OuterRef("refund_request_id")).values("pk")[:1])
    )
    # Every line but the first of its movement is a duplicate: one uncorrelated subquery, evaluated once.
    firsts = (
        lines.values("record_type", "payment_request_id", "refund_request_id")
        .annotate(first=Min("line_no"))
        .values("first")
    )
    lines.exclude(line_no__in=firsts).update(duplicate=True)
    return verdict.lines


# --- matching --------------------------------------------------------------------------------------


def _ledger(credential: WalletCredential):
    """Payments and refunds of the credential's tenant at its super app whose money is in its files: for an
    ISV-level client id, those of merchants that have no client id of their own there."""
    scope = _scope(credential)
    payments = Payment.objects.visible_to(scope).filter(order__mini_program__super_app_id=credential.super_app_id)
    refunds = Refund.objects.visible_to(scope).filter(order__mini_program__super_app_id=credential.super_app_id)
    if credential.merchant_id is None:
        own = WalletCredential.objects.visible_to(scope).filter(
            super_app_id=credential.super_app_id, merchant__isnull=False
        )
        payments = payments.exclude(merchant_id__in=own.values("merchant_id"))
        refunds = refunds.exclude(merchant_id__in=own.values("merchant_id"))
    return payments, refunds


def _match(
    run: ReconciliationRun, credential: WalletCredential, day: dt.date, *, lines: int, progress: Progress
) -> dict:
    """Record one discrepancy per line that disagrees with the ledger, and per settled ledger row the file
    lacks. A line gets the first reason that applies, in ``_line_reason``'s order; one query finds them all."""
    scope = _scope(credential)
    payments, refunds = _ledger(credential)
    run_lines = SettlementLine.objects.visible_to(scope).filter(run=run)
    _link_by_wallet_ids(run_lines, payments, refunds)
    progress("match", 1, 3)

    counts = collections.Counter({"lines": lines, **dict.fromkeys(Reason.values, 0)})
    discrepant = (
        run_lines.annotate(reason=_line_reason(credential.super_app))
        .exclude(reason=None)
        .values("reason", *_EVIDENCE_FIELDS)
        .order_by("line_no")
    )
    batch = []
    for line in discrepant.iterator(chunk_size=BATCH_SIZE):
        counts[line["reason"]] += 1
        counts["discrepant_lines"] += 1
        batch.append(_line_discrepancy(run, credential, line))
        if len(batch) == BATCH_SIZE:
            Discrepancy.objects.bulk_create(batch)
            batch.clear()
    Discrepancy.objects.bulk_create(batch)
    progress("match", 2, 3)

    # The ledger's side: payments and refunds the ledger settled that day that the file lacks.
    missing = [
        *_payments_missing_in_wallet(run, credential, day, payments, run_lines, counts),
        *_refunds_missing_in_wallet(run, credential, day, refunds, run_lines, counts),
    ]
    Discrepancy.objects.bulk_create(missing, batch_size=BATCH_SIZE)
    counts["matched"] = counts["lines"] - counts.pop("discrepant_lines", 0)
    progress("match", 3, 3)
    return dict(counts)


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return start, start + dt.timedelta(days=1)


def _in_earlier_files(credential: WalletCredential, day: dt.date, *, record_type: str, column: str):
    """``column`` (``payment_id``, ``refund_id``) of the ``record_type`` lines of the credential's files of the
    days just before ``day``: what the platform saw settle only after midnight may be in an earlier file."""
    return (
        SettlementLine.objects.visible_to(_scope(credential))
        .filter(
            run__credential=credential,
            run__status=RunStatus.SUCCEEDED,
            run__settlement_date__gte=day - SETTLED_BEFORE_DAYS,
            run__settlement_date__lt=day,
            record_type=record_type,
            **{f"{column}__isnull": False},
        )
        .values(column)
    )


def _payments_missing_in_wallet(run, credential, day: dt.date, payments, run_lines, counts) -> list[Discrepancy]:
    """Payments the ledger saw paid on ``day`` that no payment line names: ``missing_in_wallet``, or
    ``timing_cutoff`` when paid in the day's last minutes (the next day's file may settle them)."""
    start, end = _day_bounds(day)
    in_file = run_lines.filter(record_type=RecordType.PAYMENT, payment__isnull=False).values("payment_id")
    absent = (
        payments.filter(
            status=PaymentStatus.SUCCEEDED,
            pre_authorization__isnull=True,
            trade_pay_mode=TradePayMode.PAYMENT_URL,
            order__paid_at__gte=start,
            order__paid_at__lt=end,
        )
        .exclude(pk__in=in_file)
        .exclude(pk__in=_in_earlier_files(credential, day, record_type=RecordType.PAYMENT, column="payment_id"))
        .select_related("order")
        .order_by("pk")
    )
    cutoff = end - TIMING_CUTOFF_WINDOW
    return [
        _ledger_discrepancy(
            run,
            counts,
            Reason.TIMING_CUTOFF if payment.order.paid_at >= cutoff else Reason.MISSING_IN_WALLET,
            payment=payment,
            platform=_payment_evidence(payment),
        )
        for payment in absent.iterator(chunk_size=BATCH_SIZE)
    ]


def _refunds_missing_in_wallet(run, credential, day: dt.date, refunds, run_lines, counts) -> list[Discrepancy]:
    """Refunds the ledger saw succeed on ``day`` (their ``succeeded`` event) that no line names:
    ``missing_in_wallet``. One query; refunds of orderStr payments are not in these files, like their payments."""
    start, end = _day_bounds(day)
    in_file = run_lines.filter(refund__isnull=False).values("refund_id")
    succeeded = (
        PaymentEvent.objects.visible_to(_scope(credential))
        .filter(
            refund__in=refunds.filter(status=RefundStatus.SUCCEEDED, payment__trade_pay_mode=TradePayMode.PAYMENT_URL),
            to_status=RefundStatus.SUCCEEDED,
            created_at__gte=start,
            created_at__lt=end,
        )
        .exclude(refund__in=in_file)
        .exclude(refund__in=_in_earlier_files(credential, day, record_type=RecordType.REFUND, column="refund_id"))
        .select_related("refund__payment")
        .order_by("refund_id")
    )
    return [  # one event per refund: ``succeeded`` is final
        _ledger_discrepancy(
            run,
            counts,
            Reason.MISSING_IN_WALLET,
            refund=event.refund,
            platform=_refund_evidence(event.refund, succeeded_at=event.created_at),
        )
        for event in succeeded.iterator(chunk_size=BATCH_SIZE)
    ]


def _ledger_discrepancy(run: ReconciliationRun, counts, reason: Reason, **about) -> Discrepancy:
    """A discrepancy about a ledger row no line names (``payment=`` or ``refund=``), counted under ``reason``."""
    row = about.get("payment") or about["refund"]
    counts[reason.value] += 1
    return Discrepancy(run=run, isv_id=row.isv_id, merchant_id=row.merchant_id, reason=reason, **about)


def _link_by_wallet_ids(lines, payments, refunds) -> None:
    """Link what our request ids did not find by the wallet's ids, and give each line its ledger row's
    merchant (an ISV-level file mixes merchants). Touches only the lines still unlinked or without one."""
    lines.filter(payment__isnull=True).exclude(wallet_payment_id="").update(
        payment=Subquery(
            payments.exclude(wallet_payment_id="")
            .filter(wallet_payment_id=OuterRef("wallet_payment_id"))
            .values("pk")[:1]
        )
    )
    lines.filter(record_type=RecordType.REFUND, refund__isnull=True).exclude(wallet_refund_id="").update(
        refund=Subquery(
            refunds.exclude(wallet_refund_id="").filter(wallet_refund_id=OuterRef("wallet_refund_id")).values("pk")[:1]
        )
    )
    unowned = lines.filter(merchant__isnull=True)
    unowned.exclude(refund=None).update(merchant=Subquery(refunds.filter(pk=OuterRef("refund")).values("merchant")))
    unowned.exclude(payment=None).update(merchant=Subquery(payments.filter(pk=OuterRef("payment")).values("merchant")))


def _line_reason(super_app: SuperApp) -> Case:
    """The first reason a line disagrees with the ledger, or NULL: evaluated by the database for every line."""
    payment, refund = Q(record_type=RecordType.PAYMENT), Q(record_type=RecordType.REFUND)
    with_refund, void = refund & ~Q(refund_request_id=""), refund & Q(refund_request_id="")
    fee_wrong = Q(fee__lt=0) | Q(fee__gt=F("amount")) | ~Q(net=F("amount") - F("fee"))
    if super_app.settlement_fee_bps is not None:
        # Rounded half up in whole minor units, in integers (amounts of payments are positive).
        expected = ExpressionWrapper(
            (F("amount") * super_app.settlement_fee_bps + 5000) / 10_000, output_field=BigIntegerField()
        )
        fee_wrong |= ~Q(fee=expected)
    refund_fee_wrong = ~Q(fee=0) | ~Q(net=F("amount"))
    reasons = [
        (Reason.DUPLICATE_IN_FILE, Q(duplicate=True)),
        (Reason.MISSING_IN_PLATFORM, payment & Q(payment__isnull=True)),
        (Reason.MISSING_IN_PLATFORM, with_refund & Q(refund__isnull=True)),
        (Reason.MISSING_IN_PLATFORM, void & Q(payment__isnull=True)),
        (Reason.CURRENCY_MISMATCH, payment & ~Q(currency=F("payment__order__currency"))),
        (Reason.AMOUNT_MISMATCH, payment & ~Q(amount=F("payment__amount"))),
        (Reason.STATUS_MISMATCH, payment & ~Q(payment__status=PaymentStatus.SUCCEEDED)),
        (Reason.FEE_UNEXPECTED, payment & fee_wrong),
        (
            Reason.REFUND_MISMATCH,
            with_refund
            & (
                ~Q(currency=F("refund__currency"))
                | ~Q(amount=-F("refund__amount"))
                # The line names the refunded payment; a capture's refund, the authorization it captured.
                | ~(
                    Q(payment_id=F("refund__payment_id"))
                    | Q(payment_request_id=F("refund__payment__pre_authorization__out_order_no"))
                )
            ),
        ),
        (Reason.STATUS_MISMATCH, with_refund & ~Q(refund__status=RefundStatus.SUCCEEDED)),
        (Reason.FEE_UNEXPECTED, with_refund & refund_fee_wrong),
        (
            Reason.REFUND_MISMATCH,
            void
            & (
                ~Q(currency=F("payment__order__currency"))
                | ~Q(amount=-F("payment__amount"))
                | ~Q(payment__order__status=OrderStatus.REFUNDED)
            ),
        ),
        (Reason.FEE_UNEXPECTED, void & refund_fee_wrong),
    ]
    return Case(*(When(condition, then=Value(reason.value)) for reason, condition in reasons), default=None)


_EVIDENCE_FIELDS = (
    "pk",
    "line_no",
    "record_type",
    "wallet_payment_id",
    "payment_request_id",
    "wallet_refund_id",
    "refund_request_id",
    "currency",
    "amount",
    "fee",
    "net",
    "transaction_time",
    "payment_id",
    "refund_id",
    "payment__merchant_id",
    "payment__public_id",
    "payment__payment_request_id",
    "payment__wallet_payment_id",
    "payment__amount",
    "payment__status",
    "payment__order__currency",
    "payment__order__paid_at",
    "refund__merchant_id",
    "refund__public_id",
    "refund__refund_request_id",
    "refund__wallet_refund_id",
    "refund__amount",
    "refund__currency",
    "refund__status",
)


def _line_discrepancy(run: ReconciliationRun, credential: WalletCredential, line: dict) -> Discrepancy:
    """A discrepancy about one line of the file, the two sides as evidence."""
    return Discrepancy(
        run=run,
        isv_id=credential.isv_id,
        merchant_id=line["refund__merchant_id"] or line["payment__merchant_id"] or credential.merchant_id,
        reason=line["reason"],
        line_no=line["line_no"],
        payment_id=line["payment_id"],
        refund_id=line["refund_id"],
        wallet={
            "line": line["line_no"],
            "record_type": line["record_type"],
            "payment_id": line["wallet_payment_id"],
            "payment_request_id": line["payment_request_id"],
            "refund_id": line["wallet_refund_id"],
            "refund_request_id": line["refund_request_id"],
            "currency": line["currency"],
            "amount": line["amount"],
            "fee": line["fee"],
            "net": line["net"],
            "transaction_time": line["transaction_time"].isoformat(),
        },
        platform=_platform_evidence(line),
    )


def _platform_evidence(line: dict) -> dict:
    evidence = {}
    if line["payment_id"]:
        paid_at = line["payment__order__paid_at"]
        evidence["payment"] = {
            "id": line["payment__public_id"],
            "payment_request_id": line["payment__payment_request_id"],
            "wallet_payment_id": line["payment__wallet_payment_id"],
            "amount": line["payment__amount"],
            "currency": line["payment__order__currency"],
            "status": line["payment__status"],
            "paid_at": paid_at.isoformat() if paid_at else None,
        }
    if line["refund_id"]:
        evidence["refund"] = {
            "id": line["refund__public_id"],
            "refund_request_id": line["refund__refund_request_id"],
            "wallet_refund_id": line["refund__wallet_refund_id"],
            "amount": line["refund__amount"],
            "currency": line["refund__currency"],
            "status": line["refund__status"],
        }
    return evidence


def _payment_evidence(payment: Payment) -> dict:
    return {
        "payment": {
            "id": payment.public_id,
            "payment_request_id": payment.payment_request_id,
            "wallet_payment_id": payment.wallet_payment_id,
            "amount": payment.amount,
            "currency": payment.order.currency,
            "status": payment.status,
            "paid_at": payment.order.paid_at.isoformat() if payment.order.paid_at else None,
        }
    }


def _refund_evidence(refund: Refund, *, succeeded_at: dt.datetime) -> dict:
    return {
        "refund": {
            "id": refund.public_id,
            "refund_request_id": refund.refund_request_id,
            "wallet_refund_id": refund.wallet_refund_id,
            "amount": refund.amount,
            "currency": refund.currency,
            "status": refund.status,
            "succeeded_at": succeeded_at.isoformat(),
        },
        "payment": {"id": refund.payment.public_id, "payment_request_id": refund.payment.payment_request_id},
    }


def _totals(run: ReconciliationRun, credential: WalletCredential) -> dict:
    """Gross, fees and net per currency over every line of the file, in minor units."""
    sums = (
        SettlementLine.objects.visible_to(_scope(credential))
        .filter(run=run)
        .values("currency")
        .annotate(lines=Count("pk"), gross=Sum("amount"), fee=Sum("fee"), net=Sum("net"))
        .order_by("currency")
    )
    return {
        row["currency"]: {"lines": row["lines"], "gross": row["gross"], "fee": row["fee"], "net": row["net"]}
        for row in sums
    }


def _close_resolved_cutoffs(run: ReconciliationRun, credential: WalletCredential) -> int:
    """Close earlier ``timing_cutoff`` discrepancies whose payment this file settles without a discrepancy."""
    scope = _scope(credential)
    # Uncorrelated subqueries: each read once (hashed), not once per open discrepancy.
    settled_here = SettlementLine.objects.visible_to(scope).filter(
        run=run, record_type=RecordType.PAYMENT, duplicate=False, payment__isnull=False
    )
    flagged_here = Discrepancy.objects.visible_to(scope).filter(run=run, payment__isnull=False)
    return (
        Discrepancy.objects.visible_to(scope)
        .filter(
            reason=Reason.TIMING_CUTOFF,
            status=DiscrepancyStatus.OPEN,
            run__credential=credential,
            run__settlement_date__lt=run.settlement_date,
        )
        .filter(payment__in=settled_here.values("payment"))
        .exclude(payment__in=flagged_here.values("payment"))
        .update(
            status=DiscrepancyStatus.AUTO_RESOLVED,
            closed_by_run=run,
            resolved_at=timezone.now(),
            note=f"settled in the file of {run.settlement_date}",
            updated_at=timezone.now(),
        )
    )


# --- automatic resolution ------------------------------------------------------------------------------

# Verified notifications that were never applied: waiting, parked, or given up on.
UNAPPLIED_NOTIFICATIONS = (NotificationStatus.RECEIVED, NotificationStatus.PARKED, NotificationStatus.FAILED)


def _auto_resolve(run: ReconciliationRun, credential: WalletCredential, *, progress: Progress) -> dict:
    """Settle what the wallet settled while the ledger still waits; close what that settles. Counts
    ``auto_resolved`` and ``notifications_replayed``.

    First the inbox: a verified notification about the payment or refund that was never applied is applied
    through ``notification_retry``, the path a person's retry takes. Only what that does not settle is asked
    about, through ``order_refresh`` / ``refund_refresh``, the paths every inquiry takes (events, webhooks).
    """
    scope = _scope(credential)
    waiting = (
        Discrepancy.objects.visible_to(scope)
        .filter(run=run, reason=Reason.STATUS_MISMATCH, status=DiscrepancyStatus.OPEN)
        .filter(
            Q(refund__isnull=True, payment__status__in=OPEN_PAYMENT_STATUSES)
            | Q(refund__status=RefundStatus.PROCESSING)
        )
    )
    unapplied = _unapplied_notifications(credential, waiting)
    candidates = list(
        waiting.select_related(
            "payment__order__mini_program", "refund__order__mini_program", "refund__payment"
        ).order_by("pk")
    )
    counts = {"auto_resolved": 0, "notifications_replayed": 0}
    for done, discrepancy in enumerate(candidates, start=1):
        note = None
        if discrepancy.refund is not None:
            subject = (NotificationKind.REFUND, discrepancy.refund.refund_request_id)
        else:
            subject = (NotificationKind.PAYMENT, discrepancy.payment.payment_request_id)
        for notification in unapplied.get(subject, ()):
            if not _replay(notification):
                continue
            counts["notifications_replayed"] += 1
            if _settled(discrepancy, scope):
                note = f"settled by applying notification {notification.public_id} that had not been applied"
                break
        if note is None and _inquire(discrepancy, scope):
            note = "settled by an inquiry at the wallet"
        if note is not None:
            discrepancy.status = DiscrepancyStatus.AUTO_RESOLVED
            discrepancy.resolved_at = timezone.now()
            discrepancy.closed_by_run = run
            discrepancy.note = note
            discrepancy.save(update_fields=["status", "resolved_at", "closed_by_run", "note", "updated_at"])
            counts["auto_resolved"] += 1
        progress("resolve", done, len(candidates))
    return counts


def _unapplied_notifications(credential: WalletCredential, waiting) -> dict[tuple[str, str], list]:
    """The inbox's verified, never applied notifications about the payments and refunds ``waiting`` names, by
    ``(kind, subject)`` in the order they arrived; one query. The inbox's subject is the request id: a
    payment's ``paymentRequestId`` (``notifyPayment``) or ``out_trade_no`` (a classic trade, a capture's too),
    both its ``payment_request_id``; a refund's ``refundRequestId``."""
    payment_ids = waiting.filter(refund__isnull=True).values("payment__payment_request_id")
    refund_ids = waiting.filter(refund__isnull=False).values("refund__refund_request_id")
    rows = (
        InboundNotification.objects.visible_to(_scope(credential))
        .filter(super_app_id=credential.super_app_id, status__in=UNAPPLIED_NOTIFICATIONS, dedupe_key__isnull=False)
        .filter(
            Q(kind__in=[NotificationKind.PAYMENT, NotificationKind.CLASSIC], subject__in=payment_ids)
            | Q(kind=NotificationKind.REFUND, subject__in=refund_ids)
        )
        .only("pk", "public_id", "kind", "subject", "status")
        .order_by("received_at", "pk")
    )
    found = collections.defaultdict(list)
    for row in rows:
        kind = NotificationKind.REFUND if row.kind == NotificationKind.REFUND else NotificationKind.PAYMENT
        found[(kind, row.subject)].append(row)
    return found


def _replay(notification: InboundNotification) -> bool:
    """Apply a notification that had not been applied; whether it was processed now."""
    try:
        notification_retry(notification=notification)
    except NotRetryable:  # a worker or the sweeper applied it meanwhile
        return False
    except Exception:  # one notification's bug must not stop the run's resolution; the inquiry still follows
        logger.exception("reconciliation: notification %s could not be applied", notification.public_id)
        return False
    return True


def _inquire(discrepancy: Discrepancy, scope: Principal) -> bool:
    """Ask the wallet about the discrepancy's refund or payment; whether the answer settled it."""
    try:
        if discrepancy.refund is not None:
            refund_refresh(refund=discrepancy.refund)
        else:
            order_refresh(order=discrepancy.payment.order, source="reconciliation")
    except ApplicationError as error:  # e.g. the credential is gone: the discrepancy stays open for a person
        logger.warning("reconciliation: could not ask about %s: %s", discrepancy.public_id, error.code)
        return False
    return _settled(discrepancy, scope)


def _settled(discrepancy: Discrepancy, scope: Principal) -> bool:
    """Whether the ledger now has the discrepancy's refund or payment succeeded."""
    if discrepancy.refund_id is not None:
        rows = Refund.objects.visible_to(scope).filter(pk=discrepancy.refund_id, status=RefundStatus.SUCCEEDED)
    else:
        rows = Payment.objects.visible_to(scope).filter(pk=discrepancy.payment_id, status=PaymentStatus.SUCCEEDED)
    return rows.exists()


def discrepancy_resolve(*, discrepancy: Discrepancy, user, note: str, ignore: bool = False) -> Discrepancy:
    """A person closes an open discrepancy (``resolved``, or ``ignored``) with a note saying why.

    Raises ``reconciliation.discrepancy_closed`` if it is not open; closing twice is refused, not repeated.
    """
    with transaction.atomic():
        locked = (
            Discrepancy.objects.unscoped().select_for_update().get(pk=discrepancy.pk)
        )  # fetched in scope by the caller
        if locked.status != DiscrepancyStatus.OPEN:
            raise ApplicationError("reconciliation.discrepancy_closed", f"the discrepancy is {locked.status}")
        locked.status = DiscrepancyStatus.IGNORED if ignore else DiscrepancyStatus.RESOLVED
        locked.note = note
        locked.resolved_by = user
        locked.resolved_at = timezone.now()
        locked.save(update_fields=["status", "note", "resolved_by", "resolved_at", "updated_at"])
        return locked
