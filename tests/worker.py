"""A real Celery worker for tests: a separate process consuming the real broker (Redis) and working on the
test's PostgreSQL database, as it does in production. Tests using it are marked ``postgres`` and ``redis``.

Other test processes may enqueue into the same queues meanwhile; what this worker picks up of theirs names
rows by id in *this* database, and processing is idempotent, so the cross-talk changes nothing."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


#: The token the worker's metrics server asks for (deploy/README.md, "Metrics and logs").
METRICS_TOKEN = "worker-scrape-51d2"


@dataclasses.dataclass
class Worker:
    process: subprocess.Popen
    log: Path
    metrics_url: str

    def children(self) -> list[int]:
        """The pool processes (where tasks run)."""
        pid = self.process.pid
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def kill_child(self) -> None:
        for pid in self.children():
            os.kill(pid, signal.SIGKILL)


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def celery_worker(live_server, settings, transactional_db, tmp_path):
    """One worker process on the ``callbacks`` queue (prefork, two children) that serves its metrics on a
    port of its own, stopped after the test."""
    log = tmp_path / "worker.log"
    (tmp_path / "metrics").mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "PUBLIC_BASE_URL": live_server.url,
        "DJANGO_SETTINGS_MODULE": "isv_platform.settings",
        "METRICS_TOKEN": METRICS_TOKEN,
        "WORKER_METRICS_HOST": "127.0.0.1",
        "WORKER_METRICS_PORT": str(metrics_port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    command = [sys.executable, "-m", "celery", "--app", "isv_platform", "worker", "--queues", "callbacks"]
    command += ["--concurrency", "2", "--pool", "prefork", "--loglevel", "INFO", "--without-gossip"]
    command += ["--without-mingle", "--without-heartbeat", "--hostname", f"test-{os.getpid()}@%h"]
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - the project's own worker command, fixed arguments
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    worker = Worker(process=process, log=log, metrics_url=f"http://127.0.0.1:{metrics_port}/metrics")
    deadline = time.monotonic() + 30
    while b" ready." not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the Celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    yield worker
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(condition, *, timeout: float = 20.0, what: str = "the worker") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
