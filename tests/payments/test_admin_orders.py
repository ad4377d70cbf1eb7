"""The order admin as merchant staff use it: the scoped changelist and its search, the evidence timeline of
an order paid at the sandbox wallet over HTTP, the refund with its confirmation step, the CSV export, and a
changelist whose cost does not grow with the number of orders."""

import csv
import datetime
import io
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.core.tenancy import Role
from apps.miniprograms.models import MiniProgram
from apps.miniprograms.services import mini_program_update
from apps.payments import admin as payments_admin
from apps.payments.models import Order, OrderStatus, Payment, Refund
from apps.sandbox.models import Refund as WalletRefund
from apps.webhooks.models import WebhookDelivery
from apps.webhooks.services import webhook_deliver
from tests.callbacks.inbox import drain_inbox
from tests.factories import MembershipFactory, UserFactory
from tests.payments.test_orders import _order
from tests.sandbox.conftest import join_notifiers
from tests.superapps.test_client_against_sandbox import _pay_at_cashier
from tests.webhooks.conftest import Endpoint

CHANGELIST = reverse("admin:payments_order_changelist")
EXPORT = reverse("admin:payments_order_export")
B_CANARIES = ("canary-ref-b2", "canary-order-b2", "canary-mp-b", "canary-customer-b2", "canary-merchant-b")


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _staff(merchant, *, role=Role.STAFF, may_refund=False):
    return MembershipFactory(
        user=UserFactory(is_staff=True), isv=merchant.isv, merchant=merchant, role=role, may_refund=may_refund
    ).user


def _canary_order(label: str) -> Order:
    return Order.objects.unscoped().get(reference=f"canary-ref-{label}")


def _results(body: str) -> str:
    """The changelist's table of results (the filters beside it name things whatever the rows are)."""
    start = body.find('<table id="result_list">')
    return body[start : body.index("</table>", start)] if start >= 0 else ""


def _orders(mini_program: MiniProgram, count: int, **fields) -> list[Order]:
    return Order.objects.unscoped().bulk_create(
        Order(
            isv_id=mini_program.isv_id,
            merchant_id=mini_program.merchant_id,
            mini_program=mini_program,
            description="Flat white",
            amount=1250,
            currency="USD",
            expires_at=timezone.now() + datetime.timedelta(hours=1),
            **fields,
        )
        for _ in range(count)
    )


# --- the changelist ----------------------------------------------------------------------------------


def test_merchant_staff_list_their_orders_and_nothing_of_another_tenant(world):
    body = _login(world.a.merchants[1].staff).get(CHANGELIST).content.decode()
    assert _canary_order("a2").public_id in _results(body)
    assert "canary-ref-a2" in body
    assert "12.50 USD" in body  # Money, never a float
    for canary in B_CANARIES:
        assert canary not in body


@pytest.mark.parametrize("field", ["public_id", "reference", "wallet_payment_id"])
def test_search_finds_an_order_by_our_id_its_reference_or_the_wallets_payment_id_once(world, field):
    order = _canary_order("a2")
    Payment.objects.unscoped().filter(order=order).update(wallet_payment_id="2026112200000042")
    # A second attempt the wallet knows by the same paymentId: still one row, no DISTINCT needed.
    Payment.objects.unscoped().create(
        isv_id=order.isv_id,
        merchant_id=order.merchant_id,
        order=order,
        payment_request_id="pr-second-attempt",
        amount=order.amount,
        wallet_payment_id="2026112200000042",
    )
    term = {"public_id": order.public_id, "reference": "canary-ref-a2", "wallet_payment_id": "2026112200000042"}[field]
    client = _login(world.a.merchants[1].staff)
    with CaptureQueriesContext(connection) as queries:
        results = _results(client.get(CHANGELIST, {"q": term}).content.decode())
    assert results.count(f">{order.public_id}</a>") == 1
    # Neither DISTINCT nor the admin's EXISTS (SELECT … WHERE pk = outer pk) over every order of the merchant.
    assert not any(word in query["sql"] for query in queries.captured_queries for word in ("DISTINCT", "EXISTS"))


def test_search_finds_nothing_of_another_tenant(world):
    theirs = _canary_order("b2")
    Payment.objects.unscoped().filter(order=theirs).update(wallet_payment_id="2026112200000099")
    client = _login(world.a.merchants[1].staff)
    for term in (theirs.public_id, "canary-ref-b2", "2026112200000099"):
        body = client.get(CHANGELIST, {"q": term}).content.decode()
        assert _results(body) == ""
        assert "0 orders" in body


def test_the_changelist_costs_the_same_for_5_and_50_orders_and_never_counts_them_all(world, monkeypatch):
    mini_program = MiniProgram.objects.unscoped().get(app_id="canary-app-a2")
    client = _login(world.a.merchants[1].staff)
    monkeypatch.setattr(payments_admin.CappedCountPaginator, "cap", 20)
    counts = []
    for total in (5, 50):
        _orders(mini_program, total - Order.objects.unscoped().filter(mini_program=mini_program).count())
        with CaptureQueriesContext(connection) as queries:
            body = client.get(CHANGELIST, {"status__exact": "pending"}).content.decode()
        counts.append(len(queries))
        sql = [query["sql"].upper() for query in queries.captured_queries]
        assert all("LIMIT" in statement for statement in sql if "COUNT(" in statement)
    assert counts[0] == counts[1]
    assert "More than 20 orders" in body


# --- the timeline ------------------------------------------------------------------------------------


@pytest.fixture
def merchant_endpoint():
    served = Endpoint()
    yield served
    served.close()


def _timeline(body: str) -> list[tuple[str, str, str]]:
    """(time, kind, text) of each timeline entry, in page order."""
    section = body[body.index('id="order-timeline"') :]
    section = section[: section.index("</ol>")]
    entries = re.findall(
        r'<li class="(\w+) (?:ok|warn)">\s*<span class="when">([^<]+)</span>.*?</li>', section, flags=re.S
    )
    texts = re.findall(r"<li .*?</li>", section, flags=re.S)
    return [(when, kind, re.sub(r"<[^>]+>", " ", text)) for (kind, when), text in zip(entries, texts, strict=True)]


def test_the_timeline_of_an_order_paid_at_the_sandbox_shows_every_source_in_time_order(
    world, api, shop, merchant_endpoint
):
    mini_program_update(mini_program=shop, webhook_url=merchant_endpoint.url())
    created = _order(api, world, reference="T-1").json()
    _pay_at_cashier(created["trade_pay"]["paymentUrl"])
    join_notifiers()
    assert drain_inbox() == 1
    for delivery in WebhookDelivery.objects.unscoped().filter(merchant_id=shop.merchant_id):
        webhook_deliver(delivery_id=delivery.pk)
    order = Order.objects.unscoped().get(public_id=created["id"])
    assert order.status == OrderStatus.PAID

    body = _login(world.a.merchants[0].staff).get(reverse("admin:payments_order_change", args=[order.pk]))
    entries = _timeline(body.content.decode())
    kinds = [kind for _, kind, _ in entries]
    assert kinds[0] == "created"
    assert "the API" in entries[0][2]
    assert [when for when, _, _ in entries] == sorted(when for when, _, _ in entries)
    texts = " | ".join(text for _, _, text in entries)
    notification = kinds.index("notification")
    paid = next(i for i, (_, kind, text) in enumerate(entries) if kind == "event" and "→ paid" in text)
    recorded = next(i for i, (_, kind, text) in enumerate(entries) if "Webhook event order.paid recorded" in text)
    sent = next(i for i, (_, kind, text) in enumerate(entries) if "Webhook order.paid sent to" in text)
    assert kinds.index("event") < notification < paid < recorded < sent
    pay = next(i for i, (_, kind, text) in enumerate(entries) if kind == "wallet" and "payments/pay" in text)
    assert 0 < pay < notification
    assert "signature verified ✓" in entries[pay][2]
    assert "Processed" in entries[notification][2]
    assert "a notification from the wallet" in entries[paid][2]
    assert "HTTP 200" in entries[sent][2]
    assert "initiated → pending" in texts
    assert merchant_endpoint.received  # the webhook really went out


def test_the_timeline_reads_a_bounded_number_of_queries(world):
    order = _canary_order("a2")
    client = _login(world.a.merchants[1].staff)
    url = reverse("admin:payments_order_change", args=[order.pk])
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    Payment.objects.unscoped().bulk_create(
        Payment(isv_id=order.isv_id, merchant_id=order.merchant_id, order=order, payment_request_id=f"pr-{n}", amount=1)
        for n in range(20)
    )
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many) == len(few)


# --- the refund --------------------------------------------------------------------------------------


def _paid_order(api, world) -> Order:
    created = _order(api, world, amount=1000).json()
    _pay_at_cashier(created["trade_pay"]["paymentUrl"])
    client = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)
    assert client.get(f"/api/v1/orders/{created['id']}?refresh=true").json()["status"] == "paid"
    return Order.objects.unscoped().get(public_id=created["id"])


def test_staff_granted_refunds_refund_part_of_a_paid_order_at_the_wallet(world, api, shop):
    order = _paid_order(api, world)
    refunder = _staff(shop.merchant, may_refund=True)
    client = _login(refunder)
    change = client.get(reverse("admin:payments_order_change", args=[order.pk])).content.decode()
    refund_url = reverse("admin:payments_order_refund", args=[order.pk])
    assert refund_url in change
    form = client.get(refund_url).content.decode()
    assert "10.00 USD" in form

    response = client.post(refund_url, {"amount": "4.00", "reason": "spilled", "refunds_seen": "0"})
    assert response.status_code == 302
    [refund] = Refund.objects.unscoped().filter(order=order)
    assert (refund.amount, refund.status, refund.reason) == (400, "succeeded", "spilled")
    assert WalletRefund.objects.get().refund_request_id == refund.refund_request_id  # the wallet refunded it
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == ("partially_refunded", 400)
    entry = LogEntry.objects.get(object_id=str(order.pk))
    assert (entry.user, refund.public_id in entry.get_change_message()) == (refunder, True)
    followed = client.get(response["Location"]).content.decode()
    assert f"Refund {refund.public_id} of 4.00 USD: Succeeded." in followed
    assert "Staff action by" in followed  # the timeline names it


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("0", "more than zero"),
        ("10.01", "At most 10.00 USD is refundable"),
        ("ten", "Invalid amount"),
        ("1.001", "more decimals than USD allows"),
        ("-1", "Invalid amount"),
        ("NaN", "Invalid amount"),
        ("1e3", "Invalid amount"),
    ],
)
def test_a_bad_refund_amount_is_shown_and_changes_nothing(world, amount, error):
    order = _canary_order("a2")
    Order.objects.unscoped().filter(pk=order.pk).update(status=OrderStatus.PAID, paid_amount=1000)
    client = _login(_staff(world.a.merchants[1].merchant, may_refund=True))
    response = client.post(
        reverse("admin:payments_order_refund", args=[order.pk]), {"amount": amount, "refunds_seen": "0"}
    )
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Refund.objects.unscoped().filter(order=order).exists()
    assert not LogEntry.objects.exists()


def test_a_refusal_of_the_refund_service_is_shown_never_a_500(world):
    order = _canary_order("a2")  # pending: the service refuses to refund it
    Order.objects.unscoped().filter(pk=order.pk).update(paid_amount=1000)
    client = _login(world.a.merchants[1].staff)  # the owner
    response = client.post(
        reverse("admin:payments_order_refund", args=[order.pk]), {"amount": "1.00", "refunds_seen": "0"}
    )
    assert response.status_code == 200
    assert "only paid orders refund" in response.content.decode()
    assert not Refund.objects.unscoped().filter(order=order).exists()


def test_a_refund_form_sent_twice_refunds_once(world, api, shop):
    order = _paid_order(api, world)
    client = _login(_staff(shop.merchant, may_refund=True))
    refund_url = reverse("admin:payments_order_refund", args=[order.pk])
    assert 'name="refunds_seen" value="0"' in client.get(refund_url).content.decode()
    sent = {"amount": "4.00", "reason": "spilled", "refunds_seen": "0"}

    assert client.post(refund_url, sent).status_code == 302
    again = client.post(refund_url, sent)  # the browser's "resend", or a second click

    assert again.status_code == 200
    assert "refunds changed since you looked" in again.content.decode()
    assert Refund.objects.unscoped().filter(order=order).count() == 1
    assert 'name="refunds_seen" value="400"' in client.get(refund_url).content.decode()
    altered = client.post(refund_url, {**sent, "refunds_seen": "abc"})
    assert altered.status_code == 200
    assert "The page was altered" in altered.content.decode()
    assert Refund.objects.unscoped().filter(order=order).count() == 1


@pytest.mark.parametrize("role", [Role.STAFF, Role.VIEWER])
def test_staff_without_the_grant_and_viewers_get_no_refund_button_and_a_403(world, role):
    order = _canary_order("a2")
    Order.objects.unscoped().filter(pk=order.pk).update(status=OrderStatus.PAID, paid_amount=1250)
    client = _login(_staff(world.a.merchants[1].merchant, role=role))
    refund_url = reverse("admin:payments_order_refund", args=[order.pk])
    change = client.get(reverse("admin:payments_order_change", args=[order.pk]))
    assert change.status_code == 200
    assert refund_url not in change.content.decode()
    assert client.get(refund_url).status_code == 403
    assert client.post(refund_url, {"amount": "1.00"}).status_code == 403
    assert not Refund.objects.unscoped().exists()


def test_another_tenants_order_is_a_404_on_every_order_url(world):
    theirs = _canary_order("b2")
    Order.objects.unscoped().filter(pk=theirs.pk).update(status=OrderStatus.PAID, paid_amount=1250)
    for user in (world.a.merchants[1].staff, world.a.staff, _staff(world.a.merchants[1].merchant, may_refund=True)):
        client = _login(user)
        for url in (
            reverse("admin:payments_order_change", args=[theirs.pk]),
            reverse("admin:payments_order_refund", args=[theirs.pk]),
        ):
            response = client.get(url)
            assert response.status_code == 404, url
            assert "canary-ref-b2" not in response.content.decode()
        refund = client.post(reverse("admin:payments_order_refund", args=[theirs.pk]), {"amount": "1.00"})
        assert refund.status_code == 404
    assert not Refund.objects.unscoped().exists()


# --- the export --------------------------------------------------------------------------------------


def _csv(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_export_keeps_the_filter_quotes_formulas_and_shows_nothing_of_another_tenant(world):
    mini_program = MiniProgram.objects.unscoped().get(app_id="canary-app-a2")
    _orders(mini_program, 1, status=OrderStatus.PAID, paid_amount=1250, reference="=cmd|'/c calc'!A1")
    response = _login(world.a.merchants[1].staff).get(EXPORT, {"status__exact": "paid", "kind__exact": "payment"})
    header, *rows = _csv(response)
    assert header[:3] == ["id", "reference", "status"]
    assert [(row[1], row[2], row[4]) for row in rows] == [("'=cmd|'/c calc'!A1", "paid", "12.50")]
    everything = _csv(_login(world.a.merchants[1].staff).get(EXPORT))
    assert "canary-ref-a2" in {row[1] for row in everything}
    assert not any(canary in cell for row in everything for cell in row for canary in B_CANARIES)


def test_the_export_is_capped_and_says_so(world, monkeypatch):
    monkeypatch.setattr(payments_admin, "EXPORT_MAX_ROWS", 2)
    _orders(MiniProgram.objects.unscoped().get(app_id="canary-app-a2"), 3)
    rows = _csv(_login(world.a.merchants[1].staff).get(EXPORT))
    assert len(rows) == 1 + 2 + 1
    assert rows[-1] == ["# stopped after 2 rows; narrow the filters to export the rest"]


def test_the_changelist_links_the_export_with_its_filters(world):
    body = _login(world.a.merchants[1].staff).get(CHANGELIST, {"status__exact": "paid", "q": "x"}).content.decode()
    assert re.search(rf'href="{EXPORT}\?(q=x&amp;status__exact=paid|status__exact=paid&amp;q=x)"', body)


def test_nobody_adds_a_pre_authorization_or_an_order_by_hand(world):
    """Money records come from the services; their admin add pages are refused, never a 500."""
    client = Client()
    client.force_login(world.operator)
    for model in ("preauthorization", "order"):
        assert client.get(reverse(f"admin:payments_{model}_add")).status_code == 403
