"""What row-level security costs (apps/core/rls.py): the same ORM lookups of orders by primary key through
the platform's database backend, acting as the application role under a tenant's policy, and through
Django's plain PostgreSQL backend as the owner (no policy, no settings), alternating in one process.

    .venv/bin/python bench/rls.py [--orders 20000] [--lookups 3000] [--rounds 3]

Each autocommit statement of the platform runs in a transaction of its own that first sets the scope, so a
lone lookup pays two extra round trips; inside a transaction the settings cost one statement per
transaction. Both are measured: "autocommit" (one lookup a statement) and "in a transaction" (a request's
worth of 20 lookups in one atomic block). The ratio platform/plain, printed last, is the figure to track.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

SERVER = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
DATABASE = "bench_rls"


def child(orders: int, lookups: int, rounds: int) -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "isv_platform.settings")
    from django.conf import settings

    django.setup()
    plain = dict(settings.DATABASES["default"], ENGINE="django.db.backends.postgresql")
    from django.db import connections, transaction

    connections.settings["plain"] = plain
    from django.core.management import call_command

    from apps.core import rls
    from apps.core.tenancy import Principal
    from apps.demo.services import demo_seed
    from apps.miniprograms.models import MiniProgram
    from apps.payments.models import Order

    call_command("migrate", "--no-input", verbosity=0)
    demo_seed()
    mini_program = MiniProgram.objects.unscoped().get(app_id="demo-coffee-app")
    template = Order.objects.unscoped().create(
        isv_id=mini_program.isv_id,
        merchant_id=mini_program.merchant_id,
        mini_program=mini_program,
        amount=450,
        currency="USD",
        description="Flat white",
        expires_at="2030-01-01T00:00:00Z",
    )
    with connections["default"].cursor() as cursor:
        harness.clone(
            cursor,
            Order,
            template.pk,
            f"generate_series(1, {orders}) AS n",
            {"public_id": "'ord_' || lpad(n::text, 26, '0')"},
        )
        cursor.execute("ANALYZE payments_order")
    pks = list(Order.objects.unscoped().values_list("pk", flat=True))
    principal = Principal.system(isv_id=mini_program.isv_id, merchant_id=mini_program.merchant_id)
    scope = rls.scope_for(principal)
    rng = random.Random(1)

    def platform_autocommit(sample):
        with rls.scoped(scope):
            for pk in sample:
                Order.objects.visible_to(principal).get(pk=pk)

    def plain_autocommit(sample):
        for pk in sample:
            Order.objects.visible_to(principal).using("plain").get(pk=pk)

    def platform_in_transactions(sample):
        with rls.scoped(scope):
            for start in range(0, len(sample), 20):
                with transaction.atomic():
                    for pk in sample[start : start + 20]:
                        Order.objects.visible_to(principal).get(pk=pk)

    def plain_in_transactions(sample):
        for start in range(0, len(sample), 20):
            with transaction.atomic(using="plain"):
                for pk in sample[start : start + 20]:
                    Order.objects.visible_to(principal).using("plain").get(pk=pk)

    timings: dict[str, list[float]] = {}
    cases = {
        "platform autocommit": platform_autocommit,
        "plain autocommit": plain_autocommit,
        "platform in a transaction": platform_in_transactions,
        "plain in a transaction": plain_in_transactions,
    }
    for _ in range(rounds):
        for name, case in cases.items():
            sample = rng.sample(pks, lookups)
            started = time.perf_counter()
            case(sample)
            timings.setdefault(name, []).append(time.perf_counter() - started)
    best = {name: min(values) for name, values in timings.items()}
    return {
        "orders": orders + 1,
        "lookups": lookups,
        "seconds": best,
        "ratio_autocommit": best["platform autocommit"] / best["plain autocommit"],
        "ratio_in_transaction": best["platform in a transaction"] / best["plain in a transaction"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--lookups", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(child(arguments.orders, arguments.lookups, arguments.rounds)))
        return
    harness.ensure_postgres(SERVER)
    harness.recreate_database(SERVER, DATABASE)
    env = {**os.environ, "DATABASE_URL": f"{SERVER}/{DATABASE}", "DATABASE_APP_ROLE": "isv_platform_app"}
    env.pop("REDIS_URL", None)
    try:
        answer = harness.python(
            env,
            "bench/rls.py",
            "--child",
            "--orders",
            str(arguments.orders),
            "--lookups",
            str(arguments.lookups),
            "--rounds",
            str(arguments.rounds),
        ).answer()
    finally:
        harness.drop_database(SERVER, DATABASE)
    for name, seconds in answer["seconds"].items():
        each = seconds / arguments.lookups * 1e3
        print(f"{name:28} {arguments.lookups} lookups in {seconds:.3f} s ({each:.3f} ms each)")
    print(f"ratio platform/plain, autocommit:       {answer['ratio_autocommit']:.2f}")
    print(f"ratio platform/plain, in a transaction: {answer['ratio_in_transaction']:.2f}")


if __name__ == "__main__":
    main()
