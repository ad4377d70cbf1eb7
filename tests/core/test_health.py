import pytest
from django.test import Client


def test_healthz_answers_without_touching_dependencies():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_database_and_broker(db):
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_is_503_when_the_broker_is_unreachable(db, settings):
    from celery import current_app

    original = current_app.conf.broker_url
    current_app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.READINESS_TIMEOUT_SECONDS = 0.5
    try:
        response = Client().get("/readyz")
    finally:
        current_app.conf.broker_url = original
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "unavailable"}


@pytest.mark.redis
def test_readyz_reaches_the_real_redis_broker(db, settings):
    from celery import current_app

    assert current_app.conf.broker_url.startswith("redis://")
    assert Client().get("/readyz").json()["checks"]["broker"] == "ok"
