"""What every benchmark here sets up the same way: PostgreSQL up, a throwaway database dropped and recreated,
migrated and seeded, and child Pythons whose answer (and peak memory) the benchmark reads.

Benchmarks run as scripts (``bench/x.py``), so each puts the repository on ``sys.path`` before importing this.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PROTECTED_DATABASES = frozenset({"test", "postgres"})


def protected_database(name: str) -> bool:
    """Databases a benchmark must never drop: the server's own and the test suite's."""
    return name in PROTECTED_DATABASES or name.startswith("test_")


def ensure_postgres(server: str) -> None:
    """Start the local cluster if it is down (Debian's pg_ctlcluster), as the README's setup does."""
    try:
        psycopg.connect(f"{server.rstrip('/')}/postgres", connect_timeout=3).close()
        return
    except psycopg.OperationalError:
        versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
        if not versions or not shutil.which("pg_ctlcluster"):
            raise
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=False)
    psycopg.connect(f"{server.rstrip('/')}/postgres", connect_timeout=10).close()


def recreate_database(server: str, database: str) -> None:
    """A fresh, empty ``database`` (its sessions ended first); never one of ``PROTECTED_DATABASES``."""
    if protected_database(database):
        raise SystemExit(f"refusing to drop and recreate {database!r}")
    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{database}"')


def drop_database(server: str, database: str) -> None:
    if protected_database(database):
        raise SystemExit(f"refusing to drop {database!r}")
    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@dataclasses.dataclass(frozen=True)
class Child:
    """What a child Python printed and the most memory it held (``ru_maxrss`` from ``wait4``, KiB)."""

    stdout: str
    peak_kib: int

    def answer(self) -> dict:
        """The JSON object on the child's last line of output."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def python(env: dict, *command: str) -> Child:
    """Run ``python *command`` in the repository with ``env``; exit with its output if it fails."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(command[:3])} failed:\n{text[-3000:]}{err.read().decode()[-3000:]}")
    return Child(stdout=text, peak_kib=usage.ru_maxrss)


def manage(env: dict, *command: str) -> str:
    return python(env, "manage.py", *command).stdout


def migrate_and_seed(env: dict) -> dict:
    """Migrate the (fresh) database and seed the demo tenants; what ``seed_demo --json`` made."""
    manage(env, "migrate", "--no-input", "-v", "0")
    return json.loads(manage(env, "seed_demo", "--json"))


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of the values at or below it."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(group: int) -> float:
    """User + system CPU of every live process in a process group (a gunicorn master and its workers)."""
    total = 0
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == group:  # pgrp; utime and stime follow at 11 and 12
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK") if os.path.isdir("/proc") else math.nan


def clone(cursor, model, template: int, source: str, overrides: dict, where: str = "TRUE") -> None:
    """``INSERT … SELECT``: the template row's columns, but those in ``overrides`` (SQL over ``source``)."""
    table = cursor.db.ops.quote_name(model._meta.db_table)
    columns = [field.column for field in model._meta.concrete_fields if not field.primary_key]
    unknown = set(overrides) - set(columns)
    if unknown:
        raise SystemExit(f"no columns {unknown} in {table}")
    select = ", ".join(overrides.get(column, f't."{column}"') for column in columns)
    names = ", ".join(f'"{column}"' for column in columns)
    cursor.execute(
        f"INSERT INTO {table} ({names}) SELECT {select} FROM {source} CROSS JOIN {table} AS t"
        f" WHERE t.id = {int(template)} AND {where}",
    )
