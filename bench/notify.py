"""Inbound payment notifications through gunicorn and a real Celery worker, against a bare baseline in the same run.

    .venv/bin/python bench/notify.py [--count 2000] [--rate 50] [--rate-seconds 10] [--clients 8] [--rounds 3]

The wallet's signed v2 ``notifyPayment`` (SUCCESS, the payment's exact amount) is POSTed to
``/callbacks/<token>/payments/notify`` for pending payments made up front, first at a fixed rate (T-PERF-1's
50/s), then flat out from ``--clients`` connections in rounds alternating with the baseline (medians reported).
Per request: the ack latency. End to end: notifications applied per second, from the first send to the moment
the last order is ``paid``, as the database says.

The baseline (``bench/baseline/``) is what any notification must cost in this stack: a bare view that verifies
one RSA-SHA256 signature over the raw body, inserts one row and queues one Celery task on the same broker
and worker, which writes one row. Same gunicorn, same generator, same rates, measured end to end the same
way. The ratio end-to-end platform/baseline, printed last, is the figure to track; targets: ratio >= 0.7
and ack p99 < 50 ms at 50/s.

Setup, all throwaway: a fresh PostgreSQL database (dropped at the end), migrated and seeded with the demo
tenants; Redis database 14 as the broker (flushed at both ends); the platform in gunicorn with
``bench.settings`` and a Celery worker (prefork, queue ``callbacks``) as subprocesses, stopped at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import psycopg
import redis
from cryptography.hazmat.primitives import serialization

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the wallet's signing (the platform's own module) and the bench harness

from apps.superapps.client import signing  # noqa: E402
from bench import harness  # noqa: E402
from bench.harness import cpu_seconds, free_port, percentile  # noqa: E402
from bench.notify_setup import BASELINE_PATH, notification_body  # noqa: E402

RATE_THREADS = 32  # open-loop senders of the fixed-rate phase: on time unless 32 answers are outstanding
STALL_SECONDS = 60  # give up waiting for the worker when nothing more was applied for this long
PROTECTED_REDIS_DBS = {"0", "15"}  # the development default and the test suite's


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="pending orders notified, per target (2000)")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second of the fixed-rate phase (50)")
    parser.add_argument("--rate-seconds", type=float, default=10.0, help="length of the fixed-rate phase (10 s)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients of the flat-out phase (8)")
    parser.add_argument("--rounds", type=int, default=3, help="flat-out rounds, platform then baseline; medians (3)")
    parser.add_argument("--warmup", type=int, default=40, help="unmeasured notifications per target first (40)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers (3)")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery prefork processes (2)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432", help="server, no database")
    parser.add_argument("--database", default="isv_bench_notify", help="throwaway database, dropped and recreated")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14", help="broker; its database is flushed")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs for a look")
    args = parser.parse_args()
    if harness.protected_database(args.database):
        parser.error(f"refusing to drop and recreate {args.database!r}")
    if (urllib.parse.urlsplit(args.redis).path.strip("/") or "0") in PROTECTED_REDIS_DBS:
        parser.error(f"refusing to flush {args.redis!r}: give the benchmark a Redis database of its own")
    args.rate_count = round(args.rate * args.rate_seconds)
    if not 0 < args.rate_count <= args.count - args.rounds:
        parser.error("--rate x --rate-seconds must leave some of --count for each flat-out round")

    bench = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        return bench.run()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        bench.close()


@dataclasses.dataclass
class Figures:
    """One target measured in one phase. CPU figures are milliseconds per acknowledged notification."""

    label: str
    sent: int
    acked: int
    errors: list[str]
    acks_per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    applied: int
    end_to_end_per_second: float
    drain_seconds: float  # from the last ack to the last notification applied
    lag_p50_ms: float  # from the delivery's row to its processing, as the database recorded them
    lag_p99_ms: float
    web_cpu_ms: float
    worker_cpu_ms: float
    db_cpu_ms: float  # the PostgreSQL backends of the benchmark's database alive at the end of the phase
    db_sessions: float  # new PostgreSQL sessions (connections) per notification
    client_cpu_ms: float  # this process: the load generator (and its polling)


@dataclasses.dataclass
class Target:
    name: str
    path: str
    rows: str  # the table of the row written per delivery, stamped ``processed_at`` when applied


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.var = Path(tempfile.mkdtemp(prefix="isv-bench-notify-"))
        self.processes: list[subprocess.Popen] = []
        self.database_created = False
        self.port = free_port()
        self.dsn = f"{args.postgres.rstrip('/')}/{args.database}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": self.dsn,
            "ISV_ENV": "development",
            "DEBUG": "false",
            "VAR_DIR": str(self.var),
            "REDIS_URL": "",  # per-process cache: PostgreSQL and the broker are all that is shared
            "CELERY_BROKER_URL": args.redis,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "SANDBOX_ENABLED": "true",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}",
            "BENCH_WALLET_PUBLIC_KEY_FILE": str(self.var / "wallet-public.pem"),
        }

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> int:
        args = self.args
        started = time.monotonic()
        self.flush_broker()
        self.create_database()
        harness.migrate_and_seed(self.env)
        Path(self.env["BENCH_WALLET_PUBLIC_KEY_FILE"]).write_text(self.manage("sandbox_public_key"))
        statements = json.loads(self.python("-m", "bench.notify_setup", "count"))
        key_file = self.var / "wallet-private.pem"
        made = json.loads(
            self.python("-m", "bench.notify_setup", "orders", str(args.count + args.warmup), str(key_file))
        )
        self.wallet_key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        key_file.unlink()
        self.made = made
        self.connection = psycopg.connect(self.dsn, autocommit=True)
        targets = {
            "platform": Target("platform", made["path"], made["inbox_table"]),
            "baseline": Target("baseline", BASELINE_PATH, made["baseline_table"]),
        }
        self.web = self.serve()
        self.worker = self.start_worker()

        orders = made["orders"]
        warmup, fixed, flat = (
            orders[: args.warmup],
            orders[args.warmup : args.warmup + args.rate_count],
            orders[args.warmup + args.rate_count :],
        )
        for target in targets.values():
            figures = self.phase(target, warmup, label=f"{target.name} warm-up", rate=None, wait_for_worker=60)
            if figures.errors or figures.applied < figures.sent:
                print(f"{target.name}: the warm-up failed:", *figures.errors[:3], sep="\n  ", file=sys.stderr)
                return 1
        print(
            f"notify: {args.count} pending orders per target, {args.rate_count} at {args.rate:g}/s then"
            f" {args.rounds} x {len(flat) // args.rounds} flat out from {args.clients} clients, alternating"
            f" targets ({args.warmup} warm-up first); gunicorn sync"
            f" x{args.workers} (platform and baseline), Celery prefork -c {args.concurrency} on queue callbacks,"
            f" broker {args.redis}; PostgreSQL"
            f" {args.database}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the run"
            f" (setup {time.monotonic() - started:.0f} s)"
        )
        print(
            "SQL statements per notification (BEGIN/COMMIT aside): platform"
            f" {statements['platform_web']} in the view + {statements['platform_task']} in the task, baseline"
            f" {statements['baseline_web']} + {statements['baseline_task']}\n"
        )
        _print_header()
        measured: dict[tuple[str, str], Figures] = {}
        for target in targets.values():
            figures = self.phase(target, fixed, label=f"{target.name} {args.rate:g}/s", rate=args.rate)
            measured[target.name, "rate"] = figures
            _print_row(figures)
        rounds: dict[str, list[Figures]] = {name: [] for name in targets}
        share = len(flat) // args.rounds
        for number in range(args.rounds):
            batch = flat[number * share : (number + 1) * share]
            for target in targets.values():
                label = f"{target.name} flat x{args.clients} #{number + 1}"
                figures = self.phase(target, batch, label=label, rate=None)
                rounds[target.name].append(figures)
                _print_row(figures)
        if args.rounds > 1:
            print()
            _print_header()
        for name, figures in rounds.items():
            measured[name, "flat"] = median = _median(f"{name} flat (median)", figures)
            if args.rounds > 1:
                _print_row(median)
        print("\nCPU columns: milliseconds per notification, from the first send to the last applied.")
        reconnects = max(figures.db_sessions for figures in measured.values())
        if reconnects > 0.05:
            print(
                f"db conns: up to {reconnects:.2f} new PostgreSQL sessions per notification; db cpu counts only the"
                " sessions still open at the end of a phase, so it leaves out the work of those that closed"
            )

        failed = False
        for figures in [
            measured["platform", "rate"],
            measured["baseline", "rate"],
            *rounds["platform"],
            *rounds["baseline"],
        ]:
            if figures.errors or figures.applied < figures.acked:
                failed = True
                print(
                    f"\n{figures.label}: {len(figures.errors)} errors, {figures.acked - figures.applied} acked but"
                    " not applied",
                    *figures.errors[:3],
                    sep="\n  ",
                )
        platform_rate, platform_flat, baseline_flat = (
            measured["platform", "rate"],
            measured["platform", "flat"],
            measured["baseline", "flat"],
        )
        ack_met = platform_rate.p99_ms < 50 and not platform_rate.errors
        perf_1_met = platform_rate.p99_ms < 1000 and not platform_rate.errors
        ratio = platform_flat.end_to_end_per_second / baseline_flat.end_to_end_per_second
        ack_ratio = platform_flat.acks_per_second / baseline_flat.acks_per_second
        print(
            f"\nack p99 platform at {args.rate:g}/s: {platform_rate.p99_ms:.1f} ms, {len(platform_rate.errors)} errors"
            f" (target < 50 ms: {_met(ack_met)}; T-PERF-1, p99 < 1 s and no errors: {_met(perf_1_met)})"
        )
        print(
            f"acks flat out: platform {platform_flat.acks_per_second:.1f}/s, baseline"
            f" {baseline_flat.acks_per_second:.1f}/s (ratio {ack_ratio:.2f});"
            f" CPU per notification flat out, web + worker: platform {_server_cpu(platform_flat):.1f} ms,"
            f" baseline {_server_cpu(baseline_flat):.1f} ms"
        )
        print(
            f"end to end flat out: platform {platform_flat.end_to_end_per_second:.1f}/s, baseline"
            f" {baseline_flat.end_to_end_per_second:.1f}/s; run took {time.monotonic() - started:.0f} s"
        )
        print(f"ratio end-to-end platform/baseline: {ratio:.2f} (target ≥ 0.7: {_met(ratio >= 0.7)})")
        return 1 if failed else 0

    # -- one phase -------------------------------------------------------------------------------

    def phase(
        self, target: Target, orders: list[dict], *, label: str, rate: float | None, wait_for_worker: float = 0
    ) -> Figures:
        """Send one notification per order to ``target`` (at ``rate``, or flat out), then wait until every
        acknowledged one is applied. Bodies are signed just before, well inside the Request-Time tolerance."""
        requests = [self.request(target.path, order, number) for number, order in enumerate(orders)]
        mark = self.connection.execute(f"SELECT coalesce(max(id), 0) FROM {target.rows}").fetchone()[0]
        groups = [self.web.pid, self.worker.pid]
        cpu_before = [cpu_seconds(group) for group in groups]
        database_before = _postgres_cpu(self.args.database)
        sessions_before = self.sessions()
        client_before = time.process_time()
        wall_start, start = time.time(), time.perf_counter()
        if rate:
            results = _send_at_rate(self.port, requests, rate, start + 0.01)
        else:
            results = _send_flat_out(self.port, requests, self.args.clients)
        acked = [(sent, done) for sent, done, status, _ in results if status == 200]
        errors = [
            f"HTTP {status}: {answer[:300].decode(errors='replace')}"
            for _, _, status, answer in results
            if status != 200
        ]
        last_ack = max((done for _, done in acked), default=start)
        applied, applied_until = self.wait_applied(target, orders, mark, len(acked), wait_for_worker)
        cpu = [cpu_seconds(group) - before for group, before in zip(groups, cpu_before, strict=True)]
        cpu.append(_postgres_cpu_since(database_before, self.args.database))
        client_cpu = time.process_time() - client_before
        sessions = self.sessions() - sessions_before
        lags = sorted(
            row[0].total_seconds()
            for row in self.connection.execute(
                f"SELECT processed_at - received_at FROM {target.rows} WHERE id > %s AND processed_at IS NOT NULL",
                [mark],
            )
        )
        latencies = sorted(done - sent for sent, done in acked)
        per = 1000 / max(1, len(acked))
        end_to_end = (applied_until - wall_start) if applied_until else float("nan")
        return Figures(
            label=label,
            sent=len(requests),
            acked=len(acked),
            errors=errors,
            acks_per_second=len(acked) / (last_ack - start) if acked else 0.0,
            p50_ms=percentile(latencies, 0.50) * 1000,
            p99_ms=percentile(latencies, 0.99) * 1000,
            max_ms=(latencies[-1] if latencies else float("nan")) * 1000,
            applied=applied,
            end_to_end_per_second=applied / end_to_end if applied else 0.0,
            drain_seconds=max(0.0, applied_until - (wall_start + last_ack - start)) if applied_until else float("nan"),
            lag_p50_ms=percentile(lags, 0.50) * 1000,
            lag_p99_ms=percentile(lags, 0.99) * 1000,
            web_cpu_ms=cpu[0] * per,
            worker_cpu_ms=cpu[1] * per,
            db_cpu_ms=cpu[2] * per,
            db_sessions=sessions * per / 1000,
            client_cpu_ms=client_cpu * per,
        )

    def request(self, path: str, order: dict, number: int) -> bytes:
        """The raw HTTP request the wallet sends, signed with the wallet's key; ``Connection: close`` as the
        sync workers close anyway."""
        body = notification_body(order["payment_request_id"], self.made["amount"], number)
        request_time = signing.now_timestamp()
        client_id = self.made["client_id"]
        headers = {
            "Host": f"127.0.0.1:{self.port}",
            "Content-Type": "application/json; charset=UTF-8",
            "Content-Length": str(len(body)),
            "Client-Id": client_id,
            "Request-Time": request_time,
            "Signature": signing.sign(
                self.wallet_key,
                path=path,
                client_id=client_id,
                timestamp=request_time,
                body=body,
                key_version=self.made["key_version"],
            ),
            "Connection": "close",
        }
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + body

    def sessions(self) -> int:
        """Sessions PostgreSQL has opened on the benchmark's database so far (its statistics, PostgreSQL 14+)."""
        row = self.connection.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        return row[0] if row and row[0] is not None else 0

    def wait_applied(
        self, target: Target, orders: list[dict], mark: int, expected: int, grace: float
    ) -> tuple[int, float | None]:
        """Poll until ``expected`` notifications are applied; (how many, when the last was, epoch seconds).

        Only polled once sending is over; the moment comes from the rows themselves (the order's ``paid_at``,
        the baseline row's ``processed_at``), so the polling interval does not blur it."""
        if target.name == "platform":
            sql = (
                f"SELECT count(*), max(paid_at) FROM {self.made['order_table']} WHERE id = ANY(%s) AND status = 'paid'"
            )
            parameters = [[order["order_id"] for order in orders]]
        else:
            sql = f"SELECT count(*), max(processed_at) FROM {target.rows} WHERE id > %s AND processed_at IS NOT NULL"
            parameters = [mark]
        applied, last, progress = -1, None, time.monotonic()
        while True:
            count, moment = self.connection.execute(sql, parameters).fetchone()
            if count != applied:
                applied, last, progress = count, moment, time.monotonic()
            if applied >= expected:
                break
            if self.worker.poll() is not None:
                raise SystemExit(f"the Celery worker exited:\n{(self.var / 'worker.log').read_text()[-3000:]}")
            if time.monotonic() - progress > STALL_SECONDS + grace:
                print(f"{target.name}: {expected - applied} notifications never applied", file=sys.stderr)
                break
            time.sleep(0.1)
        return applied, last.timestamp() if last else None

    # -- setup and teardown ----------------------------------------------------------------------

    def create_database(self) -> None:
        harness.ensure_postgres(self.args.postgres)
        harness.recreate_database(self.args.postgres, self.args.database)
        self.database_created = True

    def flush_broker(self) -> None:
        with redis.Redis.from_url(self.args.redis, socket_connect_timeout=3) as broker:
            broker.flushdb()

    def manage(self, *command: str) -> str:
        return harness.manage(self.env, *command)

    def python(self, *command: str) -> str:
        return harness.python(self.env, *command).stdout

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        """A process in a session of its own, so closing stops it and its children and nothing else."""
        log = open(self.var / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the process's lifetime
        process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def serve(self) -> subprocess.Popen:
        server = self.spawn(
            "web",
            [
                sys.executable, "-m", "gunicorn", "isv_platform.wsgi",
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.args.workers),
                "--worker-class", "sync",
                "--timeout", "30",
                "--log-level", "warning",
            ],
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"gunicorn exited:\n{(self.var / 'web.log').read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as probe:
                    probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if probe.recv(64).startswith(b"HTTP/1.1 200"):
                        return server
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("gunicorn did not answer /healthz within 30 s")

    def start_worker(self) -> subprocess.Popen:
        """The platform's worker command on the callbacks queue; the warm-up waits until it works."""
        return self.spawn(
            "worker",
            [
                sys.executable, "-m", "celery", "--app", "isv_platform", "worker",
                "--queues", "callbacks",
                "--concurrency", str(self.args.concurrency),
                "--pool", "prefork",
                "--loglevel", "WARNING",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
        )  # fmt: skip

    def close(self) -> None:
        connection = getattr(self, "connection", None)
        if connection is not None:
            connection.close()
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        try:
            self.flush_broker()
        except redis.RedisError as error:
            print(f"could not flush {self.args.redis}: {error}", file=sys.stderr)
        if self.args.keep:
            print(f"kept: database {self.args.database}, logs in {self.var}", file=sys.stderr)
            return
        if self.database_created:
            harness.drop_database(self.args.postgres, self.args.database)
        shutil.rmtree(self.var, ignore_errors=True)


# -- load --------------------------------------------------------------------------------------------

Result = tuple[float, float, int, bytes]  # sent (or due), answered, HTTP status (0: no answer), answer


def _send_at_rate(port: int, requests: list[bytes], rate: float, start: float) -> list[Result]:
    """Open loop: request ``i`` is due at ``start + i / rate`` whatever happened to the others, and its
    latency runs from when it was due, so a slow answer that delays later sends is counted, not hidden."""
    results: list[Result | None] = [None] * len(requests)
    upcoming = iter(range(len(requests)))
    lock = threading.Lock()

    def sender() -> None:
        while True:
            with lock:
                index = next(upcoming, None)
            if index is None:
                return
            due = start + index / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            status, answer = _exchange(port, requests[index])
            results[index] = (due, time.perf_counter(), status, answer)

    _run_threads(sender, min(RATE_THREADS, len(requests)))
    return results


def _send_flat_out(port: int, requests: list[bytes], clients: int) -> list[Result]:
    """Closed loop: ``clients`` connections, each sending its next request as soon as the last is answered."""
    results: list[Result | None] = [None] * len(requests)
    upcoming = iter(range(len(requests)))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                index = next(upcoming, None)
            if index is None:
                return
            sent = time.perf_counter()
            status, answer = _exchange(port, requests[index])
            results[index] = (sent, time.perf_counter(), status, answer)

    _run_threads(client, clients)
    return results


def _run_threads(target, count: int) -> None:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """One request on a fresh connection; (status, body). The body is read to its Content-Length."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(request)
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = connection.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed after {len(received)} bytes")
                received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(
                (int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")), None
            )
            while length is None or len(body) < length:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                body += chunk
            return int(lines[0].split()[1]), body
    except (OSError, ValueError, IndexError) as error:
        return 0, f"{type(error).__name__}: {error}".encode()


# -- helpers -----------------------------------------------------------------------------------------


def _postgres_cpu(database: str) -> dict[int, float]:
    """CPU seconds (user + system) of each PostgreSQL backend connected to ``database``, by pid: the
    platform's, the worker's and this process's polling connections, from /proc."""
    seconds = {}
    marker = f" {database} ".encode()
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                command = cmdline.read()
            if not command.startswith(b"postgres: ") or marker not in command:
                continue
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        seconds[int(entry.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def _postgres_cpu_since(before: dict[int, float], database: str) -> float:
    """What the backends spent since ``before``; one that closed meanwhile (the platform reconnects after
    ``CONN_MAX_AGE``) takes its last share with it, one that opened counts whole."""
    return sum(spent - before.get(pid, 0.0) for pid, spent in _postgres_cpu(database).items())


def _median(label: str, measured: list[Figures]) -> Figures:
    """Each figure's median over the rounds; sent, acked and applied are summed, errors kept."""
    middle = {
        field.name: statistics.median(getattr(figures, field.name) for figures in measured)
        for field in dataclasses.fields(Figures)
        if field.type == "float"
    }
    return Figures(
        label=label,
        sent=sum(figures.sent for figures in measured),
        acked=sum(figures.acked for figures in measured),
        errors=[error for figures in measured for error in figures.errors],
        applied=sum(figures.applied for figures in measured),
        **middle,
    )


def _server_cpu(figures: Figures) -> float:
    return figures.web_cpu_ms + figures.worker_cpu_ms


def _met(met: bool) -> str:
    return "met" if met else "NOT met"


COLUMNS = (
    ("target", 22, None),
    ("sent", 6, "sent"),
    ("errors", 7, None),
    ("acks/s", 8, "acks_per_second"),
    ("p50 ms", 8, "p50_ms"),
    ("p99 ms", 8, "p99_ms"),
    ("max ms", 8, "max_ms"),
    ("e2e/s", 8, "end_to_end_per_second"),
    ("drain s", 8, "drain_seconds"),
    ("lag p50", 9, "lag_p50_ms"),
    ("lag p99", 9, "lag_p99_ms"),
    ("web cpu", 9, "web_cpu_ms"),
    ("worker cpu", 11, "worker_cpu_ms"),
    ("db cpu", 8, "db_cpu_ms"),
    ("db conns", 9, "db_sessions"),
    ("client cpu", 11, "client_cpu_ms"),
)


def _print_header() -> None:
    title, width, _ = COLUMNS[0]
    print(f"{title:<{width}}" + "".join(f"{title:>{width}}" for title, width, _ in COLUMNS[1:]))


def _print_row(figures: Figures) -> None:
    cells = [f"{figures.label:<22}", f"{figures.sent:>6}", f"{len(figures.errors):>7}"]
    for _, width, field in COLUMNS[3:]:
        value = getattr(figures, field)
        cells.append(f"{value:>{width}.{2 if field in {'drain_seconds', 'db_sessions'} else 1}f}")
    print("".join(cells), flush=True)


if __name__ == "__main__":
    sys.exit(main())
