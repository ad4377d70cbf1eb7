#!/bin/sh
# One entry point per process kind; anything else runs as given (e.g. `manage.py createsuperuser`).
set -eu
kind="${1:-web}"
if [ "$kind" = worker ] && [ "${WORKER_METRICS_PORT:-0}" != 0 ]; then
  # The pool processes count into files that the worker's metrics server adds up.
  export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/worker-metrics}"
fi
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  # prometheus_client's multiprocess mode needs the directory, emptied of an earlier run's files.
  rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
case "$kind" in
  web)
    exec gunicorn --config deploy/gunicorn.conf.py isv_platform.wsgi ;;
  worker)
    # WORKER_QUEUES: the queue group this worker serves (deploy/compose.yaml runs one worker per group).
    exec celery --app isv_platform worker --loglevel "${LOG_LEVEL:-INFO}" \
      --queues "${WORKER_QUEUES:-default,callbacks,wallet,webhooks,reconciliation}" \
      --concurrency "${WORKER_CONCURRENCY:-2}" ;;
  beat)
    # Exactly one beat may run: compose and Kubernetes run a single replica (deploy/README.md).
    exec celery --app isv_platform beat --loglevel "${LOG_LEVEL:-INFO}" \
      --schedule "${VAR_DIR:-/var/lib/isv-platform}/celerybeat-schedule" ;;
  migrate)
    exec python manage.py migrate --no-input ;;
  *)
    exec "$@" ;;
esac
