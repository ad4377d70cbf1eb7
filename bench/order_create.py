"""Order create through gunicorn and the sandbox wallet, against a bare DRF baseline measured in the same run.

    .venv/bin/python bench/order_create.py [--clients 8] [--seconds 5] [--rounds 3]

Absolute figures move between machines and runs, so the platform is measured beside a baseline in the same
stack (same gunicorn, Django, PostgreSQL and sandbox wallet) that does only the unavoidable work: one
RSA-SHA256 sign, one HTTP call to the sandbox with one verify, two inserts (``bench/baseline/``). The ratio
platform/baseline, printed last, is the figure to track; targets: ratio >= 0.6 and p99 <= 3 x p50.

Setup, all throwaway: a fresh PostgreSQL database (dropped at the end), migrated and seeded with the demo
tenants; the sandbox wallet served by a second gunicorn on its own port, as a real wallet would be a
separate server. Both gunicorns run ``bench.settings``, so the only difference between targets is the view.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.harness import ROOT, cpu_seconds, free_port, percentile

MINI_PROGRAM = "demo-coffee-app"  # seed_demo's published paymentUrl mini program of Demo Coffee
ORDER = {"mini_program": MINI_PROGRAM, "amount": 1250, "currency": "USD", "description": "Flat white x 2"}
PLATFORM_PATH = "/api/v1/orders"
BASELINE_PATH = "/bench/baseline/orders"
# Points the seeded sandbox super app at the sandbox's own server instead of PUBLIC_BASE_URL/sandbox.
POINT_AT_SANDBOX = (
    "import os; from apps.superapps.models import SuperApp; "
    "SuperApp.objects.filter(code='sandbox').update(gateway_base_url=os.environ['BENCH_SANDBOX_URL'] + '/sandbox')"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per round and target")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="platform/baseline rounds; medians are reported")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers serving platform and baseline")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker; above 1 means gthread")
    parser.add_argument("--sandbox-workers", type=int, default=3, help="gunicorn workers of the sandbox")
    parser.add_argument("--sandbox-threads", type=int, default=1, help="threads per sandbox worker")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432", help="server, no database")
    parser.add_argument("--database", default="isv_bench", help="throwaway database, dropped and recreated")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs for a look")
    args = parser.parse_args()
    if harness.protected_database(args.database):
        parser.error(f"refusing to drop and recreate {args.database!r}")

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
    """One target measured for one round."""

    target: str
    requests: int
    errors: int
    per_second: float
    p50_ms: float
    p99_ms: float
    web_cpu_ms: float  # CPU of the web server (platform or baseline) per answered request
    wallet_cpu_ms: float  # CPU of the sandbox wallet per answered request
    error_samples: list[str]

    @property
    def spread(self) -> float:
        return self.p99_ms / self.p50_ms if self.p50_ms else math.inf


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.var = Path(tempfile.mkdtemp(prefix="isv-bench-"))
        self.servers: list[subprocess.Popen] = []
        self.database_created = False
        self.platform_port, self.sandbox_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": f"{args.postgres.rstrip('/')}/{args.database}",
            "ISV_ENV": "development",
            "DEBUG": "false",
            "VAR_DIR": str(self.var),
            "REDIS_URL": "",  # per-process cache and file broker: nothing shared but PostgreSQL
            "CELERY_BROKER_URL": "",
            "SANDBOX_ENABLED": "true",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.platform_port}",
            # One merchant key drives all the load; the throttle still runs, it just never says no.
            "API_RATE_LIMIT": "1000000/min",
            "BENCH_SANDBOX_URL": f"http://127.0.0.1:{self.sandbox_port}",
            "BENCH_BASELINE_KEY_FILE": str(self.var / "baseline-private.pem"),
            "BENCH_WALLET_PUBLIC_KEY_FILE": str(self.var / "wallet-public.pem"),
        }

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> int:
        args = self.args
        started = time.monotonic()
        self.create_database()
        merchant_key = self.set_up()
        wallet = self.serve("sandbox", self.sandbox_port, args.sandbox_workers, args.sandbox_threads)
        web = self.serve("platform", self.platform_port, args.workers, args.threads)
        targets = {
            "platform": (PLATFORM_PATH, {"Authorization": f"Bearer {merchant_key}"}),
            "baseline": (BASELINE_PATH, {}),
        }
        for name, (path, headers) in targets.items():
            status, body = _post(self.platform_port, path, headers)
            if status != 201:
                print(f"{name}: POST {path} answered {status}, not 201:\n{body[:2000]}", file=sys.stderr)
                return 1
        statements = json.loads(self.python("-m", "bench.query_count", merchant_key))
        print(
            f"order create: {args.clients} clients, {args.warmup:g} s warm-up + {args.seconds:g} s x {args.rounds}"
            f" rounds per target; gunicorn {_workers(args.workers, args.threads)} (platform and baseline),"
            f" sandbox {_workers(args.sandbox_workers, args.sandbox_threads)}; PostgreSQL {args.database};"
            f" {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the run"
            f" (setup {time.monotonic() - started:.0f} s)"
        )
        print(
            f"SQL statements per order create in the web process (BEGIN/COMMIT aside): platform"
            f" {statements['platform']}, baseline {statements['baseline']}\n"
        )
        rounds: dict[str, list[Figures]] = {name: [] for name in targets}
        _print_header()
        for number in range(1, args.rounds + 1):
            for name, (path, headers) in targets.items():
                figures = drive(name, self.platform_port, path, headers, args, [web.pid, wallet.pid])
                rounds[name].append(figures)
                _print_row(f"{name} #{number}", figures)
        print()
        _print_header()
        medians = {name: _median(name, measured) for name, measured in rounds.items()}
        for name, figures in medians.items():
            _print_row(f"{name} (median)", figures)
        failed = False
        for name, measured in rounds.items():
            samples = [sample for figures in measured for sample in figures.error_samples]
            if samples:
                failed = True
                print(f"\n{name}: {sum(f.errors for f in measured)} errors, e.g.:", *samples[:3], sep="\n  ")
        platform, baseline = medians["platform"], medians["baseline"]
        print(f"\np99/p50 platform: {platform.spread:.2f} (target <= 3); run took {time.monotonic() - started:.0f} s")
        print(f"ratio platform/baseline: {platform.per_second / baseline.per_second:.2f} (target ≥ 0.6)")
        return 1 if failed else 0

    # -- setup and teardown ----------------------------------------------------------------------

    def create_database(self) -> None:
        harness.ensure_postgres(self.args.postgres)
        harness.recreate_database(self.args.postgres, self.args.database)
        self.database_created = True

    def set_up(self) -> str:
        """Migrate, seed the demo tenants, register the baseline at the sandbox; the Demo Coffee API key."""
        demo = harness.migrate_and_seed(self.env)
        merchant_key = next(m["api_key"] for m in demo["merchants"] if m["mini_programs"][0]["app_id"] == MINI_PROGRAM)
        self.manage("shell", "-c", POINT_AT_SANDBOX)
        Path(self.env["BENCH_WALLET_PUBLIC_KEY_FILE"]).write_text(self.manage("sandbox_public_key"))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        Path(self.env["BENCH_BASELINE_KEY_FILE"]).write_bytes(private_pem)
        public_pem = self.var / "baseline-public.pem"
        public_pem.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        self.manage("sandbox_client_register", "--client-id", "bench-baseline", "--public-key-file", str(public_pem))
        return merchant_key

    def manage(self, *command: str) -> str:
        return harness.manage(self.env, *command)

    def python(self, *command: str) -> str:
        return harness.python(self.env, *command).stdout

    def serve(self, name: str, port: int, workers: int, threads: int) -> subprocess.Popen:
        """gunicorn in a session of its own, so closing stops its master and workers and nothing else."""
        log = open(self.var / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the server's lifetime
        server = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "isv_platform.wsgi",
                "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers),
                "--worker-class", "gthread" if threads > 1 else "sync",
                "--threads", str(threads),
                "--timeout", "30",
                "--log-level", "warning",
            ],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.servers.append(server)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"{name} gunicorn exited:\n{(self.var / f'{name}.log').read_text()[-3000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return server
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{name} gunicorn did not answer /healthz within 30 s")

    def close(self) -> None:
        for server in self.servers:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
        for server in self.servers:
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        if self.args.keep:
            print(f"kept: database {self.args.database}, logs in {self.var}", file=sys.stderr)
            return
        if self.database_created:
            harness.drop_database(self.args.postgres, self.args.database)
        shutil.rmtree(self.var, ignore_errors=True)


# -- load --------------------------------------------------------------------------------------------


def drive(target: str, port: int, path: str, headers: dict, args: argparse.Namespace, servers: list[int]) -> Figures:
    """``--clients`` threads POSTing orders back to back; only answers completed inside the window count.

    CPU seconds of the two servers are read at both ends of the window: unlike throughput, CPU per order
    hardly moves when something else shares the machine.
    """
    seconds = args.seconds
    body = json.dumps(ORDER).encode()
    headers = {**headers, "Content-Type": "application/json"}
    start = time.perf_counter()
    window_start, window_end = start + args.warmup, start + args.warmup + seconds
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, failures = [], []
        while (sent := time.perf_counter()) < window_end:
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                answer = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                answer, status = str(error).encode(), 0
            done = time.perf_counter()
            if window_start <= done <= window_end:
                if status == 201:
                    mine.append(done - sent)
                else:
                    failures.append(f"HTTP {status}: {answer[:300].decode(errors='replace')}")
        connection.close()
        with lock:
            latencies.extend(mine)
            errors.extend(failures)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, window_start - time.perf_counter()))
    cpu_before = [cpu_seconds(group) for group in servers]
    time.sleep(max(0.0, window_end - time.perf_counter()))
    cpu = [after - before for after, before in zip([cpu_seconds(group) for group in servers], cpu_before, strict=True)]
    for thread in threads:
        thread.join()
    latencies.sort()
    answered = max(1, len(latencies) + len(errors))
    return Figures(
        target=target,
        requests=len(latencies) + len(errors),
        errors=len(errors),
        per_second=len(latencies) / seconds,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        web_cpu_ms=cpu[0] * 1000 / answered,
        wallet_cpu_ms=cpu[1] * 1000 / answered,
        error_samples=errors[:3],
    )


def _post(port: int, path: str, headers: dict) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", path, json.dumps(ORDER), {**headers, "Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read().decode(errors="replace")


# -- helpers -----------------------------------------------------------------------------------------


def _median(target: str, measured: list[Figures]) -> Figures:
    return Figures(
        target=target,
        requests=round(statistics.median(f.requests for f in measured)),
        errors=round(statistics.median(f.errors for f in measured)),
        per_second=statistics.median(f.per_second for f in measured),
        p50_ms=statistics.median(f.p50_ms for f in measured),
        p99_ms=statistics.median(f.p99_ms for f in measured),
        web_cpu_ms=statistics.median(f.web_cpu_ms for f in measured),
        wallet_cpu_ms=statistics.median(f.wallet_cpu_ms for f in measured),
        error_samples=[],
    )


def _print_header() -> None:
    print(
        f"{'target':<20}{'requests':>9}{'errors':>8}{'orders/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99/p50':>9}"
        f"{'web cpu ms':>12}{'wallet cpu ms':>15}"
    )


def _print_row(label: str, figures: Figures) -> None:
    print(
        f"{label:<20}{figures.requests:>9}{figures.errors:>8}{figures.per_second:>10.1f}"
        f"{figures.p50_ms:>9.1f}{figures.p99_ms:>9.1f}{figures.spread:>9.2f}"
        f"{figures.web_cpu_ms:>12.1f}{figures.wallet_cpu_ms:>15.1f}",
        flush=True,
    )


def _workers(workers: int, threads: int) -> str:
    return f"gthread {workers}x{threads}" if threads > 1 else f"sync x{workers}"


if __name__ == "__main__":
    sys.exit(main())
