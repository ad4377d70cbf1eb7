"""The reconciliation admin: who sees which runs and discrepancies, the decisions with their note and
history, and the CSV export.

The shared ``world`` holds the canaries: for the onboarded merchant of each ISV (``a2`` and ``b2``) a settlement
file, a succeeded run with two lines and one open amount discrepancy about its canary payment (see
``tests/conftest.py``). Tests that add runs count only their own."""

import csv
import io
import re

import pytest
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.core.tenancy import Role
from apps.merchants.models import WalletCredential
from apps.reconciliation import admin as reconciliation_admin
from apps.reconciliation.models import Discrepancy, DiscrepancyStatus, Reason, ReconciliationRun, RunStatus
from tests.conftest import CANARY_SETTLEMENT_DATE
from tests.factories import MembershipFactory, UserFactory

RUNS = reverse("admin:reconciliation_reconciliationrun_changelist")
DISCREPANCIES = reverse("admin:reconciliation_discrepancy_changelist")


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def canary(tenant) -> Discrepancy:
    """The canary discrepancy of an onboarded merchant of the world."""
    return (
        Discrepancy.objects.unscoped()
        .select_related("run", "payment")
        .get(merchant=tenant.merchant, note__startswith="canary-note-")
    )


def isv_run(isv_tenant, **fields) -> ReconciliationRun:
    """A run of the ISV's own settlement file (no merchant): its discrepancies name the merchants they are about."""
    credential = WalletCredential.objects.unscoped().get(isv=isv_tenant.isv, merchant__isnull=True)
    now = timezone.now()
    return ReconciliationRun.objects.unscoped().create(
        isv=isv_tenant.isv,
        super_app=credential.super_app,
        credential=credential,
        settlement_date=now.date(),
        status=RunStatus.SUCCEEDED,
        started_at=now,
        finished_at=now,
        duration_ms=1500,
        **fields,
    )


def discrepancy_of(run, merchant, **fields) -> Discrepancy:
    return Discrepancy.objects.unscoped().create(
        run=run, isv_id=run.isv_id, merchant=merchant, reason=fields.pop("reason", Reason.MISSING_IN_PLATFORM), **fields
    )


def review(client, discrepancy, action="resolve", follow=False, **data):
    return client.post(DISCREPANCIES, {"action": action, "_selected_action": [discrepancy.pk], **data}, follow=follow)


def state(discrepancy) -> dict:
    return Discrepancy.objects.unscoped().filter(pk=discrepancy.pk).values().get()


def log_entries(discrepancy):
    content_type = ContentType.objects.get_for_model(Discrepancy)
    return LogEntry.objects.filter(content_type=content_type, object_id=str(discrepancy.pk))


def exported(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


# --- who sees what --------------------------------------------------------------------------------------


def test_merchant_staff_see_only_their_own_runs_and_discrepancies(world):
    own, other_isvs = canary(world.a.merchants[1]), canary(world.b.merchants[1])
    client = client_of(world.a.merchants[1].staff)

    runs = client.get(RUNS).content.decode()
    assert "canary-client-a2" in runs
    assert "canary-client-b2" not in runs
    discrepancies = client.get(DISCREPANCIES).content.decode()
    assert own.public_id in discrepancies
    assert other_isvs.public_id not in discrepancies

    for url in (
        reverse("admin:reconciliation_reconciliationrun_change", args=[other_isvs.run_id]),
        reverse("admin:reconciliation_discrepancy_change", args=[other_isvs.pk]),
        reverse("admin:reconciliation_reconciliationrun_export", args=[other_isvs.run_id]),
    ):
        assert client.get(url).status_code in (302, 404), url


def test_a_sibling_merchant_sees_nothing_of_the_other_and_its_isv_sees_both(world):
    sibling = client_of(world.a.merchants[0].staff)
    own = canary(world.a.merchants[1])
    assert own.public_id not in sibling.get(DISCREPANCIES).content.decode()
    assert "canary-client-a2" not in sibling.get(RUNS).content.decode()

    run = isv_run(world.a)
    for_a1 = discrepancy_of(run, world.a.merchants[0].merchant)
    for_a2 = discrepancy_of(run, world.a.merchants[1].merchant)
    isv_page = client_of(world.a.staff).get(DISCREPANCIES).content.decode()
    assert for_a1.public_id in isv_page
    assert for_a2.public_id in isv_page
    assert own.public_id in isv_page
    assert canary(world.b.merchants[1]).public_id not in isv_page


def test_a_merchant_sees_its_discrepancy_from_its_isvs_file_but_not_the_isvs_run(world):
    run = isv_run(world.a, counts={"lines": 40, "matched": 39})
    found = discrepancy_of(run, world.a.merchants[0].merchant)
    client = client_of(world.a.merchants[0].staff)

    page = client.get(reverse("admin:reconciliation_discrepancy_change", args=[found.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert found.public_id in body
    assert run.public_id not in body
    assert "your ISV&#x27;s settlement file" in body
    assert client.get(reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk])).status_code in (302, 404)
    assert client.get(reverse("admin:reconciliation_reconciliationrun_export", args=[run.pk])).status_code == 404


# --- pages ----------------------------------------------------------------------------------------------


def test_the_run_page_shows_counts_per_reason_totals_per_currency_and_its_discrepancies(world):
    found = canary(world.a.merchants[1])
    page = client_of(world.a.staff).get(reverse("admin:reconciliation_reconciliationrun_change", args=[found.run_id]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Amounts differ" in body  # the reason's label, with its count
    assert "28.00 USD" in body  # gross
    assert "0.43 USD" in body  # fees
    assert "27.57 USD" in body  # net
    assert found.public_id in body  # inline
    assert reverse("admin:reconciliation_reconciliationrun_export", args=[found.run_id]) in body
    assert '<input type="submit" value="Save"' not in body


def test_the_run_list_counts_the_open_discrepancies_the_viewer_may_see(world):
    run = isv_run(world.a, counts={"lines": 3, "matched": 1})
    discrepancy_of(run, world.a.merchants[0].merchant)
    discrepancy_of(run, world.a.merchants[1].merchant)
    discrepancy_of(run, world.a.merchants[1].merchant, status=DiscrepancyStatus.IGNORED)
    response = client_of(world.a.staff).get(RUNS)
    listed = {row.pk: row for row in response.context["cl"].result_list}
    assert listed[run.pk].open_count == 2


def test_the_discrepancy_page_shows_the_files_line_and_the_ledgers_row_side_by_side(world):
    found = canary(world.a.merchants[1])
    page = client_of(world.a.merchants[1].staff).get(
        reverse("admin:reconciliation_discrepancy_change", args=[found.pk])
    )
    assert page.status_code == 200
    body = page.content.decode()
    assert "canary-wallet-a2" in body
    assert "<td>1300</td><td style='font-weight:bold;color:#ba2121'>1250</td>" in body  # the amounts differ
    assert "<td>canary-pr-a2</td><td style=''>canary-pr-a2</td>" in body  # the same request on both sides


def test_discrepancies_are_filtered_and_searched(world):
    found = canary(world.a.merchants[1])
    run = isv_run(world.a)
    other = discrepancy_of(
        run, world.a.merchants[0].merchant, wallet={"payment_id": "W-77", "payment_request_id": "pr-77"}
    )
    client = client_of(world.a.staff)

    def listed(query: str) -> set[str]:
        response = client.get(DISCREPANCIES + query)
        assert response.status_code == 200, query
        return {row.public_id for row in response.context["cl"].result_list}

    assert listed("?reason__exact=amount_mismatch") == {found.public_id}
    assert listed("?reason__exact=missing_in_platform") == {other.public_id}
    assert listed("?status__exact=open&super_app=world-wallet") == {found.public_id, other.public_id}
    assert listed("?super_app=elsewhere") == set()
    assert listed(f"?merchant__id__exact={world.a.merchants[0].merchant.pk}") == {other.public_id}
    assert listed(f"?run__id__exact={run.pk}") == {other.public_id}
    assert listed("?q=W-77") == {other.public_id}  # the wallet's id, in the evidence
    assert listed("?q=canary-pr-a2") == {found.public_id}
    today = timezone.now().date()
    assert listed(f"?run__settlement_date__gte={today}") == {other.public_id}
    canary_day = f"?run__settlement_date__gte={CANARY_SETTLEMENT_DATE}&run__settlement_date__lt=2026-11-01"
    assert listed(canary_day) == {found.public_id}


# --- resolving and ignoring -----------------------------------------------------------------------------


def test_resolve_asks_for_a_note_then_closes_the_discrepancy_and_records_who_and_why(world):
    found = canary(world.a.merchants[1])
    staff = world.a.merchants[1].staff
    client = client_of(staff)

    confirmation = review(client, found)
    assert confirmation.status_code == 200
    assert found.public_id in confirmation.content.decode()
    assert state(found)["status"] == DiscrepancyStatus.OPEN

    done = review(client, found, post="yes", note="The wallet confirmed 12.50 by mail; their file was wrong.")
    assert done.status_code == 302
    closed = state(found)
    assert closed["status"] == DiscrepancyStatus.RESOLVED
    assert closed["note"] == "The wallet confirmed 12.50 by mail; their file was wrong."
    assert closed["resolved_by_id"] == staff.pk
    assert closed["resolved_at"] is not None
    [entry] = log_entries(found)
    assert entry.user_id == staff.pk
    assert entry.action_flag == CHANGE
    assert "The wallet confirmed 12.50 by mail" in entry.get_change_message()


def test_ignore_records_the_decision_as_ignored(world):
    found = canary(world.a.merchants[1])
    review(client_of(world.a.staff), found, action="ignore", post="yes", note="test payment of the merchant")
    assert state(found)["status"] == DiscrepancyStatus.IGNORED
    assert log_entries(found).count() == 1


def test_a_decision_without_a_note_changes_nothing(world):
    found = canary(world.a.merchants[1])
    before = state(found)
    response = review(client_of(world.a.staff), found, post="yes", note="   ")
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert state(found) == before
    assert not log_entries(found).exists()


def test_a_closed_discrepancy_is_not_decided_again(world):
    found = canary(world.a.merchants[1])
    client = client_of(world.a.staff)
    review(client, found, post="yes", note="first")
    before = state(found)
    response = review(client, found, action="ignore", post="yes", note="second", follow=True)
    shown = [str(message) for message in response.context["messages"]]
    assert any(message.startswith(found.public_id) for message in shown), shown
    assert state(found) == before
    assert log_entries(found).count() == 1


def test_a_viewer_sees_discrepancies_but_cannot_resolve_or_ignore_them(world):
    found = canary(world.a.merchants[1])
    viewer = MembershipFactory(
        user=UserFactory(username="merchant-a2-viewer"),
        isv=world.a.isv,
        merchant=world.a.merchants[1].merchant,
        role=Role.VIEWER,
    ).user
    client = client_of(viewer)
    page = client.get(DISCREPANCIES)
    assert found.public_id in page.content.decode()
    assert page.context["action_form"] is None  # no action is offered
    before = state(found)
    for action in ("resolve", "ignore"):
        review(client, found, action=action, post="yes", note="not mine to decide")
    assert state(found) == before
    assert not log_entries(found).exists()


def test_another_tenants_staff_cannot_resolve_a_discrepancy(world):
    found = canary(world.a.merchants[1])
    before = state(found)
    for attacker in (world.b.staff, world.a.merchants[0].staff):
        review(client_of(attacker), found, post="yes", note="hijacked")
    assert state(found) == before
    assert not log_entries(found).exists()


# --- CSV export -----------------------------------------------------------------------------------------


def test_the_csv_export_quotes_what_a_spreadsheet_would_run(world):
    run = isv_run(world.a)
    merchant = world.a.merchants[0].merchant
    dangerous = {
        "payment_request_id": '=HYPERLINK("https://evil.example","x")',
        "refund_request_id": "+1+1",
        "payment_id": "-2+3",
        "refund_id": "@SUM(A1)",
        "currency": "\tUSD",
        "record_type": "\rPAYMENT",
        "amount": -150,
    }
    found = discrepancy_of(run, merchant, wallet=dangerous, note="=cmd|' /C calc'!A0")
    url = reverse("admin:reconciliation_reconciliationrun_export", args=[run.pk])
    header, row = exported(client_of(world.a.staff).get(url))
    line = dict(zip(header, row, strict=True))
    assert line["discrepancy"] == found.public_id
    assert line["payment_request_id"] == '\'=HYPERLINK("https://evil.example","x")'
    assert line["refund_request_id"] == "'+1+1"
    assert line["wallet_payment_id"] == "'-2+3"
    assert line["wallet_refund_id"] == "'@SUM(A1)"
    assert line["wallet_currency"] == "'\tUSD"
    assert line["record_type"] == "'\rPAYMENT"
    assert line["note"] == "'=cmd|' /C calc'!A0"
    assert line["wallet_amount"] == "-150"  # a number, not text: left as it is
    assert line["merchant"] == merchant.name


def test_the_csv_export_holds_only_what_the_viewer_may_see(world):
    found = canary(world.a.merchants[1])
    # A row of another merchant in this merchant's run (it does not happen; the export must not rely on that).
    stray = discrepancy_of(found.run, world.a.merchants[0].merchant)
    url = reverse("admin:reconciliation_reconciliationrun_export", args=[found.run_id])

    merchants = exported(client_of(world.a.merchants[1].staff).get(url))
    assert [row[2] for row in merchants[1:]] == [found.public_id]
    isvs = exported(client_of(world.a.staff).get(url))
    assert [row[2] for row in isvs[1:]] == [found.public_id, stray.public_id]
    for stranger in (world.b.staff, world.b.merchants[1].staff, world.a.merchants[0].staff):
        assert client_of(stranger).get(url).status_code == 404


def test_the_csv_export_stops_at_its_cap_and_says_so(world, monkeypatch):
    monkeypatch.setattr(reconciliation_admin, "EXPORT_MAX_ROWS", 2)
    run = isv_run(world.a)
    for _ in range(3):
        discrepancy_of(run, world.a.merchants[0].merchant)
    rows = exported(
        client_of(world.a.staff).get(reverse("admin:reconciliation_reconciliationrun_export", args=[run.pk]))
    )
    assert len(rows) == 1 + 2 + 1
    assert rows[-1] == ["# stopped after 2 rows; the run has more"]


# --- the isolation walk, over these pages with runs in every tenant ---------------------------------------


def test_no_reconciliation_page_shows_or_changes_another_tenants_data(world):
    """``tests/test_isolation.py`` walks every admin over the world's canary runs; this walks these pages with
    a run of each ISV's own file added (its discrepancy about a merchant without a run of its own), the export
    and the decisions included."""
    from apps.accounts.selectors import principal_for_user
    from tests.test_isolation import _admin_attackers, _admin_urls, _assert_no_canary, _victims_of

    for isv in world.isvs:
        discrepancy_of(isv_run(isv), isv.merchants[0].merchant, wallet={"payment_id": f"canary-isvfile-{isv.isv.pk}"})
    for attacker in _admin_attackers(world):
        client = client_of(attacker)
        victims = _victims_of(principal_for_user(attacker))
        assert victims.rows[ReconciliationRun], attacker
        assert victims.rows[Discrepancy], attacker
        before = victims.snapshot()
        for model, changelist in ((ReconciliationRun, RUNS), (Discrepancy, DISCREPANCIES)):
            for query in ("", "?q=canary", "?q=a1", "?all=", "?super_app=world-wallet"):
                response = client.get(changelist + query)
                assert response.status_code == 200, f"{changelist}{query} as {attacker}"
                _assert_no_canary(response.content.decode(), victims, f"{changelist}{query} as {attacker}")
            model_admin = admin.site._registry[model]
            for obj in victims.probes(model):
                urls = _admin_urls(model_admin, obj)
                if model is ReconciliationRun:
                    urls.append(reverse("admin:reconciliation_reconciliationrun_export", args=[obj.pk]))
                for url in urls:
                    response = client.get(url)
                    assert response.status_code in (302, 403, 404), f"GET {url} as {attacker}"
                    _assert_no_canary(response.content.decode(), victims, f"GET {url} as {attacker}")
                if model is Discrepancy:
                    for action in ("resolve", "ignore"):
                        review(client, obj, action=action, post="yes", note="hijacked")
        assert victims.snapshot() == before, f"{attacker} changed another tenant's rows"


# --- positive controls: the canaries are where their owners look, and nowhere else -------------------------


def results(body: str) -> str:
    """A changelist's table of results, without the filters (which list merchants by name)."""
    return body[body.index('<table id="result_list">') : body.index("</table>", body.index('id="result_list"'))]


def filters(body: str) -> str:
    return body[body.index('<nav id="changelist-filter"') : body.index("</nav>", body.index('id="changelist-filter"'))]


def foreign(body: str, labels: set[str], public_ids: set[str]) -> list[str]:
    """The canary strings of ``labels`` and the ``public_ids`` found in ``body``."""
    alternatives = "|".join(sorted(labels, key=len, reverse=True))
    named = re.findall(rf"canary-(?:[a-z-]*?-)?(?:{alternatives})(?![\w-])", body, flags=re.IGNORECASE)
    return sorted(set(named) | {public_id for public_id in public_ids if public_id in body})


def recon_ids(discrepancy: Discrepancy) -> set[str]:
    """The public ids a leak of this canary would show: its own, its run's, its file's and its payment's."""
    return {
        discrepancy.public_id,
        discrepancy.run.public_id,
        discrepancy.run.file.public_id,
        discrepancy.payment.public_id,
    }


@pytest.mark.parametrize(
    ("viewer", "own", "foreign_labels"),
    [
        ("a2", ["a2"], {"a1", "b", "b1", "b2"}),
        ("b2", ["b2"], {"a", "a1", "a2", "b1"}),
        ("a1", [], {"a2", "b", "b1", "b2"}),  # onboarded later: no run, and nothing of its sibling's
        ("a", ["a2"], {"b", "b1", "b2"}),  # the ISV sees its merchant's
    ],
)
def test_each_viewer_sees_its_own_reconciliation_canaries_and_none_of_anyone_elses(world, viewer, own, foreign_labels):
    by_label = {isv.isv.name.removeprefix("canary-isv-"): isv for isv in world.isvs}
    tenants = {f"{label}{index}": isv.merchants[index - 1] for label, isv in by_label.items() for index in (1, 2)}
    staff = by_label[viewer].staff if viewer in by_label else tenants[viewer].staff
    mine = [canary(tenants[label]) for label in own]
    theirs = [canary(tenants[label]) for label in ("a2", "b2") if label not in own]
    their_ids = set().union(*(recon_ids(discrepancy) for discrepancy in theirs))
    client = client_of(staff)

    def clean(body: str, where: str) -> str:
        leaked = foreign(body, foreign_labels, their_ids)
        assert not leaked, f"{where} as {viewer} shows {leaked}"
        return body

    runs = client.get(RUNS)
    assert [run.pk for run in runs.context["cl"].result_list] == [d.run_id for d in mine]
    body = clean(runs.content.decode(), "the run list")
    for discrepancy in mine:
        label = discrepancy.merchant.name.removeprefix("canary-merchant-")
        assert f"canary-client-{label}" in results(body)
        assert f"canary-merchant-{label}" in filters(body)

    listed = client.get(DISCREPANCIES)
    assert [d.pk for d in listed.context["cl"].result_list] == [d.pk for d in mine]
    body = clean(listed.content.decode(), "the discrepancy list")
    for discrepancy in mine:
        label = discrepancy.merchant.name.removeprefix("canary-merchant-")
        assert discrepancy.public_id in results(body)
        assert f"canary-pr-{label}" in results(body)
        assert f"canary-merchant-{label}" in filters(body)
    # The filters offer only what the viewer may see; a search for every canary finds only its own.
    searched = client.get(DISCREPANCIES + "?q=canary")
    assert {d.pk for d in searched.context["cl"].result_list} <= {d.pk for d in mine}
    clean(searched.content.decode(), "a search for canaries")
    for query in ("?merchant__id__exact={}", "?run__id__exact={}"):
        for discrepancy in theirs:
            pk = discrepancy.merchant_id if "merchant" in query else discrepancy.run_id
            response = client.get(DISCREPANCIES + query.format(pk), follow=True)
            assert response.status_code == 200
            if response.context.get("cl") is not None:
                assert not response.context["cl"].result_list, query
            clean(response.content.decode(), f"the discrepancy list filtered by {query}")

    for discrepancy in mine:
        label = discrepancy.merchant.name.removeprefix("canary-merchant-")
        run_page = client.get(reverse("admin:reconciliation_reconciliationrun_change", args=[discrepancy.run_id]))
        assert run_page.status_code == 200
        body = clean(run_page.content.decode(), "the run page")
        assert discrepancy.run.public_id in body
        assert discrepancy.public_id in body  # the inline
        assert f"canary-client-{label}" in body
        assert "28.00 USD" in body

        page = client.get(reverse("admin:reconciliation_discrepancy_change", args=[discrepancy.pk]))
        assert page.status_code == 200
        body = clean(page.content.decode(), "the discrepancy page")
        for expected in (
            discrepancy.public_id,
            discrepancy.run.public_id,
            discrepancy.payment.public_id,
            f"canary-wallet-{label}",
            f"canary-pr-{label}",
            f"canary-note-{label}",
        ):
            assert expected in body, expected

        export = client.get(reverse("admin:reconciliation_reconciliationrun_export", args=[discrepancy.run_id]))
        header, *rows = exported(export)
        assert [dict(zip(header, row, strict=True))["discrepancy"] for row in rows] == [discrepancy.public_id]
        text = clean("\n".join(",".join(row) for row in rows), "the CSV export")
        for expected in (f"canary-wallet-{label}", f"canary-note-{label}", f"canary-merchant-{label}"):
            assert expected in text, expected

    for discrepancy in theirs:
        for url in (
            reverse("admin:reconciliation_reconciliationrun_change", args=[discrepancy.run_id]),
            reverse("admin:reconciliation_discrepancy_change", args=[discrepancy.pk]),
            reverse("admin:reconciliation_reconciliationrun_export", args=[discrepancy.run_id]),
        ):
            response = client.get(url, follow=True)
            assert response.status_code in (200, 404), url  # a redirect to the index, or not found
            clean(response.content.decode(), url)


def test_every_reconciliation_changelist_shows_canaries_to_operators(world):
    """The operators' positive control, in the results rather than the filters (which name every merchant)."""
    client = client_of(world.operator)
    mine = [canary(world.a.merchants[1]), canary(world.b.merchants[1])]
    runs = client.get(RUNS)
    assert {run.pk for run in runs.context["cl"].result_list} == {d.run_id for d in mine}
    assert "canary-client-a2" in results(runs.content.decode())
    assert "canary-client-b2" in results(runs.content.decode())
    listed = client.get(DISCREPANCIES)
    body = results(listed.content.decode())
    for discrepancy in mine:
        assert discrepancy.public_id in body
    assert "canary-pr-a2" in body
    assert "canary-pr-b2" in body
