"""The ``reconcile`` command and the periodic tasks run the same service."""

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.core.tenancy import Principal
from apps.reconciliation import tasks
from apps.reconciliation.models import ReconciliationRun, RunStatus
from tests.reconciliation.builders import DAY, at, payment_line, write_file
from tests.reconciliation.test_services import _of


def test_the_command_reconciles_a_given_file_and_prints_a_summary(world, tmp_path):
    credential, ledger = _of(world)
    payments = ledger.payments("pay", 3, paid_at=at(DAY, 600))
    path = write_file(tmp_path / "day.csv", [payment_line(p) for p in payments[:2]])
    out = io.StringIO()

    call_command(
        "reconcile",
        "--super-app",
        credential.super_app.code,
        "--date",
        DAY.isoformat(),
        "--client-id",
        credential.client_id,
        "--file",
        str(path),
        stdout=out,
    )

    run = ReconciliationRun.objects.visible_to(Principal.operator()).get(credential=credential)
    summary = out.getvalue()
    assert f"{run.public_id} {credential.client_id} {DAY}: succeeded" in summary
    assert "matched" in summary
    assert "missing_in_wallet" in summary
    assert "USD gross 2001" in summary


def test_the_command_wants_one_client_id_for_a_file(world, tmp_path):
    credential, _ = _of(world)
    path = write_file(tmp_path / "day.csv", [])

    with pytest.raises(CommandError, match="--client-id"):
        call_command(
            "reconcile", "--super-app", credential.super_app.code, "--date", DAY.isoformat(), "--file", str(path)
        )

    assert not ReconciliationRun.objects.unscoped().filter(settlement_date=DAY).exists()


@pytest.mark.django_db(transaction=True)
def test_the_task_fetches_yesterdays_file_and_a_missing_one_is_flagged(world, api, shop, wallet):
    credential = shop.merchant.wallet_credentials.get(super_app=wallet.super_app)
    yesterday = timezone.now().astimezone(dt.UTC).date() - dt.timedelta(days=1)

    assert tasks.reconcile(credential.pk, yesterday.isoformat()) == RunStatus.SUCCEEDED
    wallet.super_app.gateway_base_url = f"{wallet.base_url}/nowhere"
    wallet.super_app.save(update_fields=["gateway_base_url"])
    assert tasks.reconcile(credential.pk, (yesterday - dt.timedelta(days=1)).isoformat()) == RunStatus.FAILED

    runs = list(ReconciliationRun.objects.visible_to(Principal.operator()).filter(credential=credential).order_by("pk"))
    assert [run.counts.get("lines") for run in runs] == [0, None]
    assert runs[1].error_code == "reconciliation.file_missing"
    assert "FILE_NOT_FOUND" in runs[1].errors[0]
    assert runs[1].file is None
