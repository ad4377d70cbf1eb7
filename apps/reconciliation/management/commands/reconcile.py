"""``manage.py reconcile --super-app sandbox --date 2026-11-21 [--client-id …] [--file path.csv]``"""

from __future__ import annotations

import datetime as dt
import sys

from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import ApplicationError
from apps.reconciliation import services
from apps.reconciliation.models import ReconciliationRun
from apps.superapps.models import SuperApp

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Reconcile a day's settlement file(s) of a super app against the ledger (the periodic task's service)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--super-app", required=True, help="The super app's code, e.g. sandbox.")
        parser.add_argument("--date", required=True, type=dt.date.fromisoformat, help="Settlement day, YYYY-MM-DD.")
        parser.add_argument("--client-id", help="One client id (default: every one at the super app).")
        parser.add_argument("--file", help="Reconcile this file instead of fetching it (needs one client id).")

    def handle(self, *args, **options) -> None:
        super_app = SuperApp.objects.filter(code=options["super_app"]).first()
        if super_app is None:
            raise CommandError(f"no super app {options['super_app']!r}")
        credentials = services.credentials_of(super_app=super_app, client_id=options["client_id"])
        if not credentials:
            raise CommandError(f"no client id at {super_app.code} to reconcile")
        if options["file"] and len(credentials) != 1:
            raise CommandError("--file is one client's file: name it with --client-id")
        progress = _Bar(self.stderr) if sys.stderr.isatty() else None
        for credential in credentials:
            try:
                run = services.reconciliation_run(
                    super_app=super_app,
                    day=options["date"],
                    credential=credential,
                    file_path=options["file"],
                    progress=progress,
                )
            except ApplicationError as error:
                raise CommandError(f"{error.code}: {error.message}") from None
            finally:
                if progress:
                    progress.end()
            self._summary(credential.client_id, run)

    def _summary(self, client_id: str, run: ReconciliationRun) -> None:
        out = self.stdout
        out.write(f"{run.public_id} {client_id} {run.settlement_date}: {run.status} in {run.duration_ms} ms")
        if run.error_code:
            out.write(f"  {run.error_code}")
        for error in run.errors[:20]:
            out.write(f"  line {error['line']}: {error['message']}" if isinstance(error, dict) else f"  {error}")
        for name, value in sorted(run.counts.items()):
            out.write(f"  {name:<22}{value:>10}")
        for currency, total in sorted(run.totals.items()):
            out.write(
                f"  {currency} gross {total['gross']} fee {total['fee']} net {total['net']} ({total['lines']} lines)"
            )


class _Bar:
    """A one-line progress bar on a terminal: ``import [######....] 4000/10000``."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.shown = False

    def __call__(self, step: str, done: int, total: int) -> None:
        filled = BAR_WIDTH * done // total if total else BAR_WIDTH
        self.stream.write(f"\r{step:<8} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}", ending="")
        self.stream.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown:
            self.stream.write("")
            self.shown = False
