"""Move this database onto Citus: merchant-owned tables sharded on ``merchant_id`` and co-located, shared
ones copied to every worker (apps/core/distribution.py; deploy/README.md, "Moving to Citus").

``--prepare`` does the part plain PostgreSQL can: primary keys of ``(merchant_id, id)`` and foreign keys of
``(merchant_id, …_id)`` among merchant-owned tables. Run on the single database before the move, it is the
pre-flight check: it fails, changing nothing, if any row points at another merchant's. ``--worker`` registers
worker nodes first; ``--sql`` prints what would run. Safe to run again: it reads the catalog and does only
what is left.
"""

import re

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, connection, transaction

from apps.core.distribution import UNENFORCED_ON_CITUS, Step, distribution_plan, readiness_problems


class Command(BaseCommand):
    help = "Distribute merchant-owned tables on merchant_id over Citus (--prepare: keys only, plain PostgreSQL)."

    def add_arguments(self, parser):
        parser.add_argument("--prepare", action="store_true", help="Only widen the keys; no Citus needed.")
        parser.add_argument("--sql", action="store_true", help="Print the statements; change nothing.")
        parser.add_argument(
            "--coordinator",
            metavar="HOST[:PORT]",
            help="How the workers reach this coordinator (citus_set_coordinator_host), for reference tables.",
        )
        parser.add_argument(
            "--worker",
            action="append",
            default=[],
            metavar="HOST[:PORT]",
            help="A Citus worker to register first (repeatable).",
        )

    def handle(self, *args, prepare: bool, sql: bool, coordinator: str | None, worker: list[str], **options):
        if connection.vendor != "postgresql":
            raise CommandError("Citus runs on PostgreSQL; DATABASE_URL names another database.")
        if problems := readiness_problems():
            raise CommandError("The schema is not distributable yet:\n" + "\n".join(problems))
        citus, has_citus = not prepare, self._has_citus()
        if citus and not has_citus and not sql:
            raise CommandError(
                "This database has no Citus extension. Run CREATE EXTENSION citus on the coordinator, "
                "or --prepare to widen the keys on plain PostgreSQL."
            )
        if (worker or coordinator) and not citus:
            raise CommandError("--worker and --coordinator register Citus nodes; they do not go with --prepare.")
        nodes = [self._node("citus_set_coordinator_host", coordinator)] if coordinator else []
        nodes += [self._node("citus_add_node", value) for value in worker]
        distributed_already = self._distributed_already() if citus and has_citus else frozenset()
        steps = distribution_plan(citus=citus, distributed_already=distributed_already)
        if sql:
            for step in nodes + steps:
                self.stdout.write(f"{step.sql};  -- {step.why}")
            return
        self._run(nodes)
        # The key changes go in one transaction, so that a row pointing at another merchant's stops them all;
        # Citus's functions each commit on their own (they copy data to the workers).
        keys = [step for step in steps if not step.on_citus]
        widen, restore = [s for s in keys if "FOREIGN KEY" not in s.sql], [s for s in keys if "FOREIGN KEY" in s.sql]
        try:
            with transaction.atomic():
                self._run(widen if citus else keys)
        except IntegrityError as error:
            raise CommandError(f"Nothing was changed: a row points at another merchant's row. {error}") from None
        if citus:
            for step in steps:
                if step.on_citus:
                    self._run([step])
            with transaction.atomic():
                self._run(restore)
        self.stdout.write(
            f"Done: {len(steps)} statements. Kept by the application, not the database: "
            + ", ".join(sorted(UNENFORCED_ON_CITUS))
            + "."
        )

    def _run(self, steps) -> None:
        with connection.cursor() as cursor:
            for step in steps:
                self.stdout.write(f"  {step.why}")
                cursor.execute(step.sql)

    @staticmethod
    def _has_citus() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
            return cursor.fetchone() is not None

    @staticmethod
    def _distributed_already() -> frozenset[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT logicalrelid::regclass::text FROM pg_dist_partition")
            return frozenset(row[0] for row in cursor.fetchall())

    @staticmethod
    def _node(function: str, value: str) -> Step:
        """Registering a node is idempotent in Citus: a second run finds it there."""
        host, _, port = value.partition(":")
        if not re.fullmatch(r"[A-Za-z0-9.-]+", host) or not re.fullmatch(r"\d{0,5}", port):
            raise CommandError(f"{value!r}: give HOST or HOST:PORT.")
        return Step(f"SELECT {function}('{host}', {int(port or 5432)})", f"{function} {host}", on_citus=True)
