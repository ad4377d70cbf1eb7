"""SQL statements (BEGIN/COMMIT aside) of one order create in the web process; run by order_create.py.

Throughput moves with the machine; the statement count does not, and it is the first thing to look at when
the ratio drops. Run with ``bench.settings`` against a migrated, seeded database and a live sandbox.
"""

from __future__ import annotations

import json
import sys

import django

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def main() -> None:
    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.order_create import BASELINE_PATH, ORDER, PLATFORM_PATH

    merchant_key = sys.argv[1]
    client = Client()
    counts = {}
    for target, path, headers in (
        ("platform", PLATFORM_PATH, {"HTTP_AUTHORIZATION": f"Bearer {merchant_key}"}),
        ("baseline", BASELINE_PATH, {}),
    ):
        seen = []
        for _ in range(3):  # the first request of a process also records the key's last use
            with CaptureQueriesContext(connection) as queries:
                response = client.post(path, json.dumps(ORDER), content_type="application/json", **headers)
            if response.status_code != 201:
                raise SystemExit(f"{target}: {response.status_code} {response.content[:500]!r}")
            seen.append(sum(not q["sql"].startswith(TRANSACTION_CONTROL) for q in queries.captured_queries))
        counts[target] = min(seen)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
