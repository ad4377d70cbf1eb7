"""Reconciliation in the admin: runs with their counts per reason and totals per currency, the discrepancies
they found (the file's line and the ledger's row side by side), a CSV export of a run, and the two decisions
a person takes about an open discrepancy — resolved or ignored, always with a note.

Everything is read-only; the decisions go through ``services.discrepancy_resolve`` and are recorded in the
admin's history (``LogEntry``) with the note. A merchant's staff see only their own runs and discrepancies; a
discrepancy found in an ISV's file is theirs when it is about their payment, but the ISV's run is not.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Count, Exists, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.core.admin import ReadOnlyInline, TenantScopedAdmin, request_principal
from apps.core.errors import ApplicationError
from apps.core.exports import EXPORT_MAX_ROWS, streamed_csv
from apps.core.money import Money

from . import services
from .models import Discrepancy, DiscrepancyStatus, Reason, ReconciliationRun

#: The run page lists this many discrepancies; the rest are one click away in the discrepancy list.
INLINE_MAX_ROWS = 200


def _money(value, currency: str) -> str:
    try:
        return str(Money(value=int(value), currency=currency))
    except (ApplicationError, TypeError, ValueError):
        return f"{value} {currency}"


def _duration(milliseconds: int | None) -> str:
    if milliseconds is None:
        return "—"
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    seconds = milliseconds / 1000
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"


def _visible_runs(request):
    return ReconciliationRun.objects.visible_to(request_principal(request))


def _visible_discrepancies(request):
    return Discrepancy.objects.visible_to(request_principal(request))


class SuperAppFilter(admin.SimpleListFilter):
    """The super apps of the discrepancies the viewer may see (the super app list itself is operators')."""

    title = "super app"
    parameter_name = "super_app"
    path = "run__super_app"

    def lookups(self, request, model_admin):
        found = (
            model_admin.get_queryset(request)
            .order_by()
            .values_list(f"{self.path}__code", f"{self.path}__name")
            .distinct()
        )
        return sorted(found, key=lambda pair: pair[1])

    def queryset(self, request, queryset):
        return queryset.filter(**{f"{self.path}__code": self.value()}) if self.value() else queryset


class RunSuperAppFilter(SuperAppFilter):
    """The super apps of the runs the viewer may see."""

    path = "super_app"


# --- runs -----------------------------------------------------------------------------------------------


class DiscrepancyInline(ReadOnlyInline):
    model = Discrepancy
    fk_name = "run"
    ordering = ("pk",)
    verbose_name_plural = f"discrepancies (the first {INLINE_MAX_ROWS})"
    fields = ("discrepancy_link", "reason", "status", "merchant", "line_no", "subject")
    readonly_fields = fields

    @admin.display(description="Discrepancy")
    def discrepancy_link(self, discrepancy: Discrepancy) -> str:
        url = reverse("admin:reconciliation_discrepancy_change", args=[discrepancy.pk])
        return format_html('<a href="{}">{}</a>', url, discrepancy.public_id)

    @admin.display(description="Payment / refund request")
    def subject(self, discrepancy: Discrepancy) -> str:
        return _subject(discrepancy)


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(TenantScopedAdmin):
    list_display = (
        "settlement_date",
        "super_app",
        "client",
        "merchant",
        "status",
        "lines",
        "matched",
        "open_discrepancies",
        "duration",
    )
    list_filter = ("status", RunSuperAppFilter, "merchant")
    search_fields = ("public_id", "credential__client_id")
    list_select_related = ("super_app", "credential", "merchant")
    date_hierarchy = "settlement_date"
    ordering = ("-settlement_date", "-pk")
    fields = (
        "public_id",
        "settlement_date",
        "super_app",
        "client",
        "merchant",
        "status",
        "started_at",
        "finished_at",
        "duration",
        "error_code",
        "errors",
        "counts_table",
        "totals_table",
        "export_link",
    )
    readonly_fields = fields
    inlines = (DiscrepancyInline,)
    staff_may = frozenset()

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # runs are written by the reconciliation only

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        # Open discrepancies counted among those the viewer may see, never through the unscoped relation.
        open_count = (
            _visible_discrepancies(request)
            .filter(run=OuterRef("pk"), status=DiscrepancyStatus.OPEN)
            .order_by()
            .values("run")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(open_count=Coalesce(Subquery(open_count, output_field=IntegerField()), Value(0)))
        )

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, DiscrepancyInline) and obj is not None:
            first = kwargs["queryset"].filter(run=obj).order_by("pk").values_list("pk", flat=True)[:INLINE_MAX_ROWS]
            kwargs["queryset"] = kwargs["queryset"].filter(pk__in=list(first))
        return kwargs

    def get_urls(self):
        export = path(
            "<path:object_id>/export.csv",
            self.admin_site.admin_view(self.export_view),
            name="reconciliation_reconciliationrun_export",
        )
        return [export, *super().get_urls()]

    @admin.display(description="Client", ordering="credential__client_id")
    def client(self, run: ReconciliationRun) -> str:
        return run.credential.client_id

    @admin.display(description="Lines")
    def lines(self, run: ReconciliationRun):
        return run.counts.get("lines", "—")

    @admin.display(description="Matched")
    def matched(self, run: ReconciliationRun):
        return run.counts.get("matched", "—")

    @admin.display(description="Open discrepancies", ordering="open_count")
    def open_discrepancies(self, run: ReconciliationRun) -> str:
        count = getattr(run, "open_count", 0)
        if not count:
            return "0"
        url = reverse("admin:reconciliation_discrepancy_changelist")
        return format_html('<a href="{}?run__id__exact={}&status__exact=open">{}</a>', url, run.pk, count)

    @admin.display(description="Duration", ordering="duration_ms")
    def duration(self, run: ReconciliationRun) -> str:
        return _duration(run.duration_ms)

    @admin.display(description="Lines per outcome")
    def counts_table(self, run: ReconciliationRun) -> str:
        counts = dict(run.counts or {})
        labels = [("lines", "Lines in the file"), ("matched", "Matched")]
        labels += [(reason.value, reason.label) for reason in Reason]
        labels += [
            ("closed_earlier", "Earlier cut-offs closed by this file"),
            ("auto_resolved", "Settled automatically (a missed notification applied, or the wallet asked)"),
            ("notifications_replayed", "Missed notifications applied"),
        ]
        known = {key for key, _ in labels}
        rows = [(label, key, counts[key]) for key, label in labels if key in counts]
        rows += [(key, key, value) for key, value in sorted(counts.items()) if key not in known]
        if not rows:
            return "—"
        body = format_html_join(
            "", "<tr><td>{}</td><td><code>{}</code></td><td style='text-align:right'>{}</td></tr>", rows
        )
        return format_html("<table><tr><th>Outcome</th><th>Code</th><th>Count</th></tr>{}</table>", body)

    @admin.display(description="Totals per currency")
    def totals_table(self, run: ReconciliationRun) -> str:
        totals = run.totals or {}
        if not totals:
            return "—"
        rows = [
            (
                currency,
                sums.get("lines", "—"),
                _money(sums.get("gross", 0), currency),
                _money(sums.get("fee", 0), currency),
                _money(sums.get("net", 0), currency),
            )
            for currency, sums in sorted(totals.items())
        ]
        cell = "<td style='text-align:right'>{}</td>"
        body = format_html_join("", "<tr><td>{}</td>" + cell * 4 + "</tr>", rows)
        head = "<tr><th>Currency</th><th>Lines</th><th>Gross</th><th>Fees</th><th>Net</th></tr>"
        return format_html("<table>" + head + "{}</table>", body)

    @admin.display(description="Export")
    def export_link(self, run: ReconciliationRun) -> str:
        url = reverse("admin:reconciliation_reconciliationrun_export", args=[run.pk])
        return format_html('<a class="button" href="{}">Export the discrepancies as CSV</a>', url)

    def export_view(self, request, object_id):
        """The run's discrepancies the viewer may see, streamed as CSV, at most ``EXPORT_MAX_ROWS``."""
        if not self.has_view_permission(request):
            raise Http404
        run = self.get_queryset(request).filter(pk=object_id).first() if str(object_id).isdigit() else None
        if run is None:
            raise Http404
        discrepancies = (
            _visible_discrepancies(request)
            .filter(run=run)
            .select_related("merchant", "payment", "refund")
            .order_by("pk")[: EXPORT_MAX_ROWS + 1]
        )
        return streamed_csv(
            filename=f"reconciliation-{run.public_id}.csv",
            columns=EXPORT_COLUMNS,
            rows=(_export_row(run, discrepancy) for discrepancy in discrepancies.iterator(chunk_size=2000)),
            max_rows=EXPORT_MAX_ROWS,
            more="the run has more",
        )


EXPORT_COLUMNS = (
    "run",
    "settlement_date",
    "discrepancy",
    "reason",
    "status",
    "merchant",
    "line",
    "record_type",
    "payment_request_id",
    "refund_request_id",
    "wallet_payment_id",
    "wallet_refund_id",
    "wallet_currency",
    "wallet_amount",
    "wallet_fee",
    "wallet_net",
    "platform_payment",
    "platform_refund",
    "platform_amount",
    "platform_currency",
    "platform_status",
    "note",
    "resolved_at",
)


def _export_row(run: ReconciliationRun, discrepancy: Discrepancy) -> list:
    wallet, platform = discrepancy.wallet or {}, discrepancy.platform or {}
    payment, refund = platform.get("payment") or {}, platform.get("refund") or {}
    ledger = refund or payment
    return [
        run.public_id,
        run.settlement_date.isoformat(),
        discrepancy.public_id,
        discrepancy.reason,
        discrepancy.status,
        discrepancy.merchant.name if discrepancy.merchant else "",
        discrepancy.line_no or "",
        wallet.get("record_type", ""),
        wallet.get("payment_request_id") or payment.get("payment_request_id", ""),
        wallet.get("refund_request_id") or refund.get("refund_request_id", ""),
        wallet.get("payment_id", ""),
        wallet.get("refund_id", ""),
        wallet.get("currency", ""),
        wallet.get("amount", ""),
        wallet.get("fee", ""),
        wallet.get("net", ""),
        payment.get("id", ""),
        refund.get("id", ""),
        ledger.get("amount", ""),
        ledger.get("currency", ""),
        ledger.get("status", ""),
        discrepancy.note,
        discrepancy.resolved_at.isoformat() if discrepancy.resolved_at else "",
    ]


# --- discrepancies --------------------------------------------------------------------------------------


def _subject(discrepancy: Discrepancy) -> str:
    wallet, platform = discrepancy.wallet or {}, discrepancy.platform or {}
    refund = wallet.get("refund_request_id") or (platform.get("refund") or {}).get("refund_request_id")
    payment = wallet.get("payment_request_id") or (platform.get("payment") or {}).get("payment_request_id")
    return refund or payment or "—"


def _flatten(evidence: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in (evidence or {}).items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# The ledger's names for what the file calls by its own: such keys share one row of the side-by-side table.
PLATFORM_ALIASES = {
    "payment.payment_request_id": "payment_request_id",
    "payment.wallet_payment_id": "payment_id",
    "refund.refund_request_id": "refund_request_id",
    "refund.wallet_refund_id": "refund_id",
}


def evidence_rows(wallet: dict, platform: dict) -> list[tuple[str, object, object]]:
    """(key, the file's value, the ledger's value) for every key of either side; amount and currency pair up
    with the refund's when the ledger row is a refund, else with the payment's."""
    wallet_flat, platform_flat = _flatten(wallet), _flatten(platform)
    subject = "refund" if "refund" in (platform or {}) else "payment"
    aliases = {**PLATFORM_ALIASES, f"{subject}.amount": "amount", f"{subject}.currency": "currency"}
    platform_named = {aliases.get(key, key): value for key, value in platform_flat.items()}
    keys = list(wallet_flat) + [key for key in platform_named if key not in wallet_flat]
    return [(key, wallet_flat.get(key, ""), platform_named.get(key, "")) for key in keys]


class ReviewForm(forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        max_length=2000,
        help_text="Why: what was checked, with whom, and what was decided. Kept with the discrepancy.",
    )


@admin.register(Discrepancy)
class DiscrepancyAdmin(TenantScopedAdmin):
    list_display = (
        "public_id",
        "run_date",
        "super_app",
        "merchant",
        "reason",
        "status",
        "subject",
        "line_no",
        "created_at",
    )
    list_filter = ("reason", "status", ("run__settlement_date", admin.DateFieldListFilter), SuperAppFilter, "merchant")
    search_fields = (
        "public_id",
        "payment__payment_request_id",
        "refund__refund_request_id",
        "wallet__payment_request_id",
        "wallet__refund_request_id",
        "wallet__payment_id",
        "wallet__refund_id",
    )
    list_select_related = ("run__super_app", "merchant")
    ordering = ("-pk",)
    fields = (
        "public_id",
        "run_display",
        "merchant",
        "reason",
        "status",
        "line_no",
        "subject",
        "evidence",
        "note",
        "resolved_by",
        "resolved_at",
        "closed_by_run_display",
        "created_at",
    )
    readonly_fields = fields
    actions = ("resolve", "ignore")
    staff_may = frozenset({"change"})

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may(request, "change") and obj is None  # the actions, never the form

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        # Whether the viewer may open the runs: a merchant sees its discrepancies in its ISV's file, not the run.
        runs = _visible_runs(request)
        return (
            super()
            .get_queryset(request)
            .annotate(
                run_visible=Exists(runs.filter(pk=OuterRef("run_id"))),
                closed_by_run_visible=Exists(runs.filter(pk=OuterRef("closed_by_run_id"))),
            )
        )

    def lookup_allowed(self, lookup, value, request=None):
        # The run page links to its discrepancies; the queryset is scoped, so this names nothing new.
        return lookup in ("run__id__exact",) or super().lookup_allowed(lookup, value, request)

    @admin.display(description="Run date", ordering="run__settlement_date")
    def run_date(self, discrepancy: Discrepancy) -> dt.date:
        return discrepancy.run.settlement_date

    @admin.display(description="Super app", ordering="run__super_app__name")
    def super_app(self, discrepancy: Discrepancy) -> str:
        return discrepancy.run.super_app.name

    @admin.display(description="Payment / refund request")
    def subject(self, discrepancy: Discrepancy) -> str:
        return _subject(discrepancy)

    def _run(self, run: ReconciliationRun | None, visible: bool) -> str:
        if run is None:
            return "—"
        if not visible:
            return f"{run.settlement_date} ({run.super_app.name}, your ISV's settlement file)"
        url = reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk])
        return format_html(
            '<a href="{}">{}</a> of {} ({})', url, run.public_id, run.settlement_date, run.super_app.name
        )

    @admin.display(description="Run")
    def run_display(self, discrepancy: Discrepancy) -> str:
        return self._run(discrepancy.run, getattr(discrepancy, "run_visible", False))

    @admin.display(description="Closed by run")
    def closed_by_run_display(self, discrepancy: Discrepancy) -> str:
        return self._run(discrepancy.closed_by_run, getattr(discrepancy, "closed_by_run_visible", False))

    @admin.display(description="The file's line and the ledger's row")
    def evidence(self, discrepancy: Discrepancy) -> str:
        rows = evidence_rows(discrepancy.wallet, discrepancy.platform)
        if not rows:
            return "—"
        marked = [
            (
                key,
                wallet,
                platform,
                "font-weight:bold;color:#ba2121" if wallet != "" and platform != "" and wallet != platform else "",
            )
            for key, wallet, platform in rows
        ]
        body = format_html_join("", "<tr><td><code>{0}</code></td><td>{1}</td><td style='{3}'>{2}</td></tr>", marked)
        head = "<tr><th>Key</th><th>Settlement file (wallet)</th><th>Ledger (platform)</th></tr>"
        note = "Amounts in minor units; a ledger value that differs from the file's is in red."
        return format_html("<table>" + head + "{}</table><p class='help'>{}</p>", body, note)

    @admin.action(description="Resolve… (with a note)", permissions=["change"])
    def resolve(self, request, queryset):
        return self._review(request, queryset, decision=DiscrepancyStatus.RESOLVED)

    @admin.action(description="Ignore… (with a note)", permissions=["change"])
    def ignore(self, request, queryset):
        return self._review(request, queryset, decision=DiscrepancyStatus.IGNORED)

    def _review(self, request, queryset, *, decision: str):
        """Ask for the note on a confirmation page; with it, close each selected open discrepancy."""
        form = ReviewForm(request.POST if request.POST.get("post") == "yes" else None)
        if form.is_bound and form.is_valid():
            note, done = form.cleaned_data["note"], 0
            for discrepancy in queryset:
                try:
                    closed = services.discrepancy_resolve(
                        discrepancy=discrepancy,
                        user=request.user,
                        note=note,
                        ignore=decision == DiscrepancyStatus.IGNORED,
                    )
                except ApplicationError as error:
                    self.message_user(request, f"{discrepancy.public_id}: {error.message}", messages.ERROR)
                    continue
                self.log_change(request, closed, f"{closed.get_status_display()}: {note}")
                done += 1
            if done:
                label = DiscrepancyStatus(decision).label.lower()
                self.message_user(request, f"{done} discrepancy(ies) {label}.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Resolve discrepancies" if decision == DiscrepancyStatus.RESOLVED else "Ignore discrepancies",
            "verb": "Resolve" if decision == DiscrepancyStatus.RESOLVED else "Ignore",
            "decided": decision,
            "action": request.POST.get("action"),
            "form": form,
            "discrepancies": list(queryset.select_related("run")),
            "already_closed": queryset.exclude(status=DiscrepancyStatus.OPEN).count(),
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/reconciliation/discrepancy/review.html", context)
