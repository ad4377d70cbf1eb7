"""Reconciliation of a large settlement file through the real service, against a COPY + hash join floor.

    .venv/bin/python bench/reconcile.py [--lines 1000000] [--each 100]

For each of two sizes (``--lines`` and a quarter of it), in a fresh PostgreSQL database: a ledger of orders,
payments and refunds and the matching settlement file (CSV, in a temporary directory), with ``--each``
injected discrepancies of every reason the service detects (see ``bench/reconcile_setup.py``). Then, each in a
child process of its own so its peak memory (``ru_maxrss`` from ``wait4``) is its alone:

- **run**: ``reconciliation_run(..., file_path=...)``, the real service (store, validate, COPY into the staging
  table, match, record discrepancies, totals), checked: exactly the injected discrepancies, with their
  reasons (PASS/FAIL; the exit status is 1 on FAIL);
- **floor**: the least this can cost: ``COPY`` of the same file into a bare table and one hash join against
  the payments table (psycopg, plain SQL).

Wall seconds are those of the work itself, measured inside each child (Python and Django start-up aside). The
ratio run/floor at the full size is printed last; targets: ratio <= 3 and the run's peak memory independent
of the file's size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines of the larger file (1,000,000)")
    parser.add_argument("--each", type=int, default=100, help="injected discrepancies of each reason (100)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432", help="server, no database")
    parser.add_argument("--database", default="isv_bench_recon", help="throwaway database, dropped and recreated")
    args = parser.parse_args()
    if harness.protected_database(args.database):
        parser.error(f"refusing to drop and recreate {args.database!r}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    harness.ensure_postgres(args.postgres)
    scratch = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    dsn = f"{args.postgres.rstrip('/')}/{args.database}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": dsn,
        "MEDIA_ROOT": str(scratch / "media"),
    }
    began = time.monotonic()
    print(
        f"reconciliation: files of {args.lines // 4:,} and {args.lines:,} lines, {args.each} injected discrepancies"
        f" per reason; PostgreSQL {args.database}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results = []
    try:
        for lines in (args.lines // 4, args.lines):
            results.append(_size(args, lines, env, dsn, scratch))
    finally:
        harness.drop_database(args.postgres, args.database)
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print(
        f"{'lines':>10} {'setup s':>8} {'run s':>8} {'run MiB':>8} {'floor s':>8} {'floor MiB':>10} {'run/floor':>10}"
    )
    for row in results:
        print(
            f"{row['lines']:>10,} {row['setup_seconds']:>8.1f} {row['run_seconds']:>8.1f} {row['run_mib']:>8.0f}"
            f" {row['floor_seconds']:>8.1f} {row['floor_mib']:>10.0f} {row['ratio']:>10.2f}"
        )
    small, large = results
    growth = large["run_mib"] / small["run_mib"]
    passed = all(not row["problems"] for row in results)
    print(f"correctness: {'PASS' if passed else 'FAIL'} (exactly the injected discrepancies, with their reasons)")
    print(
        f"peak memory of the run: {small['run_mib']:.0f} MiB at {small['lines']:,} lines, {large['run_mib']:.0f} MiB"
        f" at {large['lines']:,} (x{growth:.2f} for x4 the lines; target: independent of the size:"
        f" {'met' if growth < 1.25 else 'NOT met'}); run took {time.monotonic() - began:.0f} s"
    )
    print(f"ratio run/floor: {large['ratio']:.2f} (target <= 3: {'met' if large['ratio'] <= 3 else 'NOT met'})")
    return 0 if passed else 1


def _size(args, lines: int, env: dict, dsn: str, scratch: Path) -> dict:
    started = time.monotonic()
    harness.recreate_database(args.postgres, args.database)
    harness.migrate_and_seed(env)
    path = scratch / f"settlement-{lines}.csv"
    made = harness.python(env, "-m", "bench.reconcile_setup", "ledger", str(lines), str(args.each), str(path)).answer()
    setup = time.monotonic() - started
    print(
        f"{lines:,} lines: ledger {made['ledger_seconds']:.1f} s, file {made['file_seconds']:.1f} s"
        f" ({made['file_bytes'] / 2**20:.0f} MiB), setup {setup:.0f} s",
        flush=True,
    )
    floor_child = harness.python(env, "-m", "bench.reconcile_setup", "floor", dsn, str(path), made["payment_table"])
    run_child = harness.python(env, "-m", "bench.reconcile_setup", "run", str(path), str(args.each))
    floor, done = floor_child.answer(), run_child.answer()
    for problem in done["problems"]:
        print(f"  FAIL: {problem}", file=sys.stderr)
    counts = {key: value for key, value in done["counts"].items() if value and key not in {"lines", "matched"}}
    print(
        f"  run {done['seconds']:.1f} s ({done['counts'].get('matched', 0):,} matched; {counts}),"
        f" floor {floor['seconds']:.1f} s (COPY {floor['copy_seconds']:.1f} s, {floor['matched']:,} joined)",
        flush=True,
    )
    last, steps = 0.0, []
    for step, moment in done["steps"].items():
        steps.append(f"{step} {moment - last:.1f} s")
        last = moment
    print(f"  run steps: {', '.join(steps)}, the rest {done['seconds'] - last:.1f} s", flush=True)
    path.unlink()
    return {
        "lines": lines,
        "setup_seconds": setup,
        "run_seconds": done["seconds"],
        "run_mib": run_child.peak_kib / 1024,
        "floor_seconds": floor["seconds"],
        "floor_mib": floor_child.peak_kib / 1024,
        "ratio": done["seconds"] / floor["seconds"],
        "problems": done["problems"],
    }


if __name__ == "__main__":
    sys.exit(main())
