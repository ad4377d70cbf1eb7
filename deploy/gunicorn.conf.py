"""gunicorn settings for production: `gunicorn -c deploy/gunicorn.conf.py isv_platform.wsgi`.

Sync workers are steadier than gthread on small machines (keep-alive connections pin to one worker);
two to four per core is right for an I/O-light Django app. Override any value with GUNICORN_* variables
or the command line.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count()))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 30
keepalive = 5
max_requests = 5000
max_requests_jitter = 500
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def child_exit(server, worker):
    """In prometheus_client's multiprocess mode, a worker that exits leaves its live gauges behind unless told."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
