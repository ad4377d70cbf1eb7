"""The order changelist and detail page of the admin with a million orders, as a merchant's staff see them.

    .venv/bin/python bench/admin.py [--orders 1000000] [--small 10000] [--others 100000] [--requests 30]

For each of two sizes (``--small`` and ``--orders`` orders of Demo Coffee, plus ``--others`` orders of other
tenants both times), in a fresh PostgreSQL database: the orders, payments and evidence loaded in bulk
(``bench/admin_setup.py load``), then, in a child process of its own (``admin_setup.py measure``), the server
time of each page — Django handling the request in-process (``django.test.Client``, logged in with
``force_login`` as a merchant-level staff member), from the request to the rendered response — p50 and p95
over ``--requests`` requests after ``--warmup`` unmeasured ones, and the SQL queries of each page.

The small size is the in-run baseline: the ratio of p95 large/small and whether the query count is the same at
both sizes are printed last. Targets: p95 < 300 ms at the large size and a query count independent of the
number of orders. A page that errors or shows the wrong rows prints FAIL; the exit status is 0 all the same
(this is a measurement, not a test).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

TARGET_P95_MS = 300


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="Demo Coffee's orders, large size (1,000,000)")
    parser.add_argument("--small", type=int, default=10_000, help="Demo Coffee's orders, small size (10,000)")
    parser.add_argument("--others", type=int, default=100_000, help="other tenants' orders, both sizes (100,000)")
    parser.add_argument("--requests", type=int, default=30, help="measured requests per page (30)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured requests per page first (3)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432", help="server, no database")
    parser.add_argument("--database", default="isv_bench_admin", help="throwaway database, dropped and recreated")
    parser.add_argument("--keep", action="store_true", help="keep the large size's database for a look")
    parser.add_argument("--sql", action="store_true", help="print each page's queries")
    args = parser.parse_args()
    if harness.protected_database(args.database):
        parser.error(f"refusing to drop and recreate {args.database!r}")
    if not 200 <= args.small <= args.orders:
        parser.error("--small must be at least 200 (a filtered week must fill a page) and at most --orders")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    harness.ensure_postgres(args.postgres)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": f"{args.postgres.rstrip('/')}/{args.database}",
        "ISV_ENV": "development",
        "DEBUG": "false",
        "REDIS_URL": "",  # per-process cache: nothing shared but PostgreSQL
        "CELERY_BROKER_URL": "",
        "VAR_DIR": tempfile.mkdtemp(prefix="isv-bench-admin-"),
    }
    began = time.monotonic()
    print(
        f"admin: Demo Coffee's order changelist and detail page as its staff, at {args.small:,} and {args.orders:,}"
        f" orders (+ {args.others:,} of other tenants); {args.warmup} warm-up + {args.requests} measured requests"
        f" per page, server time in-process; PostgreSQL {args.database}; {os.cpu_count()} cores, load average"
        f" {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    sizes = {}
    try:
        for orders in (args.small, args.orders):
            sizes[orders] = _size(args, orders, env)
    finally:
        if not args.keep:
            harness.drop_database(args.postgres, args.database)
        else:
            print(f"kept: database {args.database}", file=sys.stderr)
    _report(args, sizes, time.monotonic() - began)
    return 0


def _size(args, orders: int, env: dict) -> dict:
    started = time.monotonic()
    harness.recreate_database(args.postgres, args.database)
    harness.migrate_and_seed(env)
    made = harness.python(env, "-m", "bench.admin_setup", "load", str(orders), str(args.others)).answer()
    rows = ", ".join(f"{table} {count:,}" for table, count in made["rows"].items())
    print(
        f"{orders:,} orders: load {made['load_seconds']:.1f} s, ANALYZE {made['analyze_seconds']:.1f} s,"
        f" setup {time.monotonic() - started:.0f} s ({rows})",
        flush=True,
    )
    targets = json.dumps(made["targets"])
    pages = harness.python(
        env, "-m", "bench.admin_setup", "measure", targets, str(args.requests), str(args.warmup)
    ).answer()
    for name, page in pages.items():
        for problem in page["problems"]:
            print(f"  FAIL: {name}: {problem}", flush=True)
        if args.sql:
            print(f"  {name}:", *page["sql"], sep="\n    ")
    return pages


def _report(args, sizes: dict, seconds: float) -> None:
    small, large = sizes[args.small], sizes[args.orders]
    print()
    print(
        f"{'page':<28}{'orders':>11}{'p50 ms':>9}{'p95 ms':>9}{'queries':>9}"
        f"{'p95 large/small':>17}{'same queries':>14}{'p95 < 300 ms':>14}"
    )
    for name in large:
        for orders, pages in sizes.items():
            page = pages[name]
            print(f"{name:<28}{orders:>11,}{page['p50_ms']:>9.1f}{page['p95_ms']:>9.1f}{page['queries']:>9}", end="")
            if orders == args.orders:
                same = page["queries"] == small[name]["queries"]
                print(
                    f"{page['p95_ms'] / small[name]['p95_ms']:>17.2f}{'yes' if same else 'NO':>14}"
                    f"{_met(page['p95_ms'] < TARGET_P95_MS):>14}"
                )
            else:
                print()
    failed = [name for pages in sizes.values() for name, page in pages.items() if page["problems"]]
    slowest = max(large, key=lambda name: large[name]["p95_ms"])
    print(
        f"\np95 at {args.orders:,} orders: at most {large[slowest]['p95_ms']:.1f} ms ({slowest}; target"
        f" < {TARGET_P95_MS} ms: {_met(all(page['p95_ms'] < TARGET_P95_MS for page in large.values()))})"
    )
    same = all(large[name]["queries"] == small[name]["queries"] for name in large)
    print(f"query count independent of the number of orders: {_met(same)}")
    print(f"pages: {'FAIL (' + ', '.join(sorted(set(failed))) + ')' if failed else 'all as expected'}; run took"
          f" {seconds:.0f} s")  # fmt: skip


def _met(met: bool) -> str:
    return "met" if met else "NOT met"


if __name__ == "__main__":
    sys.exit(main())
