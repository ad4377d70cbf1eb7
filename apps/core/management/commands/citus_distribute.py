"""Move this database onto Citus: merchant-owned tables sharded on ``merchant_id`` and co-located, shared
ones copied to every worker (apps/core/distribution.py; deploy/README.md, "Moving to Citus").

``--prepare`` comes first and does the part plain PostgreSQL can: primary keys of ``(merchant_id, id)`` and
foreign keys of ``(merchant_id, …_id)`` among merchant-owned tables. Run on the single database before the
move, it is the pre-flight check: it fails, changing nothing, if any row points at another merchant's. Then,
on the Citus coordinator, the command without it registers the nodes (``--coordinator``, ``--worker``) and
distributes. ``--sql`` prints what would run. Safe to run again: it reads the catalog and does only what is
left.
"""

import re

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, connection, transaction

from apps.core.distribution import UNENFORCED_ON_CITUS, Step, citus_plan, prepare_plan, readiness_problems


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
        if (worker or coordinator) and prepare:
            raise CommandError("--worker and --coordinator register Citus nodes; they do not go with --prepare.")
        nodes = [self._node("citus_set_coordinator_host", coordinator)] if coordinator else []
        nodes += [self._node("citus_add_node", value) for value in worker]
        keys = prepare_plan()
        if sql:
            self._print(keys if (prepare or keys) else nodes + citus_plan(self._distributed_already()))
            if keys and not prepare:
                self.stdout.write("-- The schema is not prepared: run --prepare, then --sql again for the rest.")
            return
        if prepare:
            self._prepare(keys)
        elif keys:
            raise CommandError(
                "Run citus_distribute --prepare first: it widens the keys and checks, in one transaction, that "
                "every row stays within its merchant, before anything is distributed."
            )
        elif not self._has_citus():
            raise CommandError("This database has no Citus extension: run CREATE EXTENSION citus on the coordinator.")
        else:
            self._distribute(nodes + citus_plan(self._distributed_already()))
        self.stdout.write(
            "Done. Kept by the application, not the database: " + ", ".join(sorted(UNENFORCED_ON_CITUS)) + "."
        )

    def _prepare(self, keys: list[Step]) -> None:
        try:
            with transaction.atomic():
                self._run(keys)
        except IntegrityError as error:
            raise CommandError(f"Nothing was changed: a row points at another merchant's row. {error}") from None
        self.stdout.write(f"Prepared: {len(keys)} statements.")

    def _distribute(self, steps: list[Step]) -> None:
        """Citus's functions each commit on their own (they copy data to the workers); the foreign keys are
        dropped before them and restored after, each in a transaction."""
        functions = [step for step in steps if step.on_citus]
        dropped = [step for step in steps if not step.on_citus and "DROP CONSTRAINT" in step.sql]
        restored = [step for step in steps if not step.on_citus and "ADD CONSTRAINT" in step.sql]
        with transaction.atomic():
            self._run(dropped)
        for step in functions:
            self._run([step])
        with transaction.atomic():
            self._run(restored)

    def _print(self, steps: list[Step]) -> None:
        for step in steps:
            self.stdout.write(f"{step.sql};  -- {step.why}")

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
        """The tables Citus already knows (none where there is no Citus yet, as with --sql before the move)."""
        if not Command._has_citus():
            return frozenset()
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
