"""The notification outbox: delivery, acknowledgement, the retry schedule, and the ways to run the sweep."""

import datetime as dt
import io
import json
import types

import pytest
import time_machine
from django.core.management import call_command

from apps.sandbox import services, tasks
from apps.sandbox.management.commands import sandbox_deliver
from apps.sandbox.models import Notification, NotificationAttempt
from tests.sandbox.conftest import paid_payment

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
FAILED_ACK = json.dumps({"result": {"resultCode": "PROCESS_FAIL", "resultStatus": "F", "resultMessage": "no"}})


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def test_delivered_on_an_s_acknowledgement(merchant, receiver, clock):
    payment = paid_payment(merchant, notify_url=receiver.url())
    assert services.deliver_due_notifications() == 1
    assert receiver.received[0].json["paymentId"] == payment.payment_id
    notification = Notification.objects.get()
    assert (notification.status, notification.delivered_at, notification.next_attempt_at) == ("DELIVERED", START, None)
    assert services.deliver_due_notifications() == 0


def test_retried_on_the_schedule_until_acknowledged(merchant, receiver, clock):
    receiver.script.extend([(500, "oops"), (200, FAILED_ACK), (200, "not json")])
    paid_payment(merchant, notify_url=receiver.url())
    expected_gaps = [0, 120, 600, 600]
    for attempt, gap in enumerate(expected_gaps, start=1):
        clock.shift(gap - 1 if gap else 0)
        if gap:
            assert services.deliver_due_notifications() == 0, f"attempt {attempt} came early"
            clock.shift(1)
        assert services.deliver_due_notifications() == 1
    attempts = NotificationAttempt.objects.order_by("pk")
    assert [(a.status_code, a.delivered) for a in attempts] == [(500, False), (200, False), (200, False), (200, True)]
    assert [a.attempted_at for a in attempts] == [
        START,
        START + dt.timedelta(seconds=120),
        START + dt.timedelta(seconds=720),
        START + dt.timedelta(seconds=1320),
    ]
    assert attempts[0].response_excerpt == "oops"
    assert Notification.objects.get().status == "DELIVERED"
    assert len(receiver.received) == 4
    assert len({r.body for r in receiver.received}) == 1


def test_gives_up_after_the_last_scheduled_attempt(merchant, receiver, clock, settings):
    settings.SANDBOX_NOTIFY_RETRY_SCHEDULE = [0, 10, 20]
    receiver.default = (503, "")
    paid_payment(merchant, notify_url=receiver.url())
    for gap in (0, 10, 20, 3600):
        clock.shift(gap)
        services.deliver_due_notifications()
    notification = Notification.objects.get()
    assert (notification.status, notification.attempt_count, notification.next_attempt_at) == ("FAILED", 3, None)
    assert len(receiver.received) == 3


def test_time_scale_shrinks_the_schedule(merchant, receiver, clock, settings):
    settings.SANDBOX_TIME_SCALE = 0.01
    receiver.script.append((500, ""))
    paid_payment(merchant, notify_url=receiver.url())
    services.deliver_due_notifications()
    assert Notification.objects.get().next_attempt_at == START + dt.timedelta(seconds=1.2)
    clock.shift(1.2)
    assert services.deliver_due_notifications() == 1
    assert Notification.objects.get().status == "DELIVERED"


def test_an_unreachable_endpoint_is_recorded_and_retried(merchant, clock, receiver):
    port = receiver.server.server_port
    receiver.server.shutdown()
    receiver.server.server_close()
    paid_payment(merchant, notify_url=f"http://127.0.0.1:{port}/notify")
    assert services.deliver_due_notifications() == 1
    attempt = NotificationAttempt.objects.get()
    assert attempt.status_code is None
    assert "ConnectError" in attempt.error
    assert Notification.objects.get().next_attempt_at == START + dt.timedelta(seconds=120)


def test_a_notification_is_sent_once_even_if_two_senders_race(merchant, receiver, clock):
    paid_payment(merchant, notify_url=receiver.url())
    notification = Notification.objects.get()
    assert services.notification_attempt(notification.pk) == 1
    assert services.notification_attempt(notification.pk) == 0
    assert len(receiver.received) == 1


def test_no_notify_url_means_no_notification(merchant, clock):
    paid_payment(merchant)
    assert not Notification.objects.exists()


def test_the_sweep_runs_as_a_command_and_as_a_celery_task(merchant, receiver, clock):
    paid_payment(merchant, notify_url=receiver.url(), request_id="pr_a")
    out = io.StringIO()
    call_command("sandbox_deliver", stdout=out)
    assert "1 notification attempt(s)" in out.getvalue()
    paid_payment(merchant, notify_url=receiver.url(), request_id="pr_b")
    assert tasks.deliver_due_notifications.name == "sandbox.deliver_due_notifications"
    assert tasks.deliver_due_notifications.apply().get() == 1
    assert [r.json["paymentRequestId"] for r in receiver.received] == ["pr_a", "pr_b"]


def test_the_command_loops_until_interrupted(merchant, receiver, clock, monkeypatch):
    paid_payment(merchant, notify_url=receiver.url())
    sweeps = []

    def stop_after_two(seconds):
        sweeps.append(seconds)
        if len(sweeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(sandbox_deliver, "time", types.SimpleNamespace(sleep=stop_after_two))
    with pytest.raises(KeyboardInterrupt):
        call_command("sandbox_deliver", "--loop", "--interval", "0.5", stdout=io.StringIO())
    assert sweeps == [0.5, 0.5]
    assert len(receiver.received) == 1


def test_a_merchant_slower_than_the_timeout_is_a_failed_attempt(merchant, receiver, clock, settings):
    settings.SANDBOX_NOTIFY_TIMEOUT = 0.1
    receiver.delay = 0.5
    paid_payment(merchant, notify_url=receiver.url())
    services.deliver_due_notifications()
    attempt = NotificationAttempt.objects.get()
    assert (attempt.delivered, attempt.status_code) == (False, None)
    assert "ReadTimeout" in attempt.error


@pytest.mark.django_db(transaction=True)
def test_first_attempts_can_run_off_the_request_thread(merchant, receiver):
    """Where the database can be shared (not in-memory SQLite), first attempts run on this thread."""
    paid_payment(merchant, notify_url=receiver.url(), fault_settings={"late_notify": 1})
    notification = Notification.objects.get()
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)):
        thread = services.deliver_in_background([notification.pk])
        assert thread.name == "sandbox-notifier"
        thread.join(timeout=15)
    assert len(receiver.received) == 1
    notification.refresh_from_db()
    assert notification.status == "DELIVERED"
