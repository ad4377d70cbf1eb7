"""The invariants of T-REL-8, checked after every step of the lifecycle machine over the orders of one
example: the platform's books agree with the wallet's, money is conserved, terminal states never regress,
and nothing of one tenant carries another's.

The allowed status moves below are written from what the platform promises (README, §4 of reliability.md),
not read from ``apps.payments.transitions``: a test that borrowed the table it checks could not fail.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from django.db.models import Q

from apps.callbacks.models import InboundNotification, NotificationStatus
from apps.payments.models import (
    Order,
    OrderKind,
    Payment,
    PaymentEvent,
    PreAuthorization,
    PreAuthorizationRelease,
    Refund,
)
from apps.webhooks.models import WebhookEvent

from .lifecycle_wallet import Seller, WalletBooks, WalletTruth, balances

TERMINAL = frozenset()
# What a status may become, in one step of the machine or several (the closure of the promised moves).
ORDER_NEXT = {
    "pending": {"processing", "authorized", "paid", "failed", "closed", "partially_refunded", "refunded"},
    "processing": {"pending", "paid", "failed", "closed", "partially_refunded", "refunded"},
    "authorized": {"paid", "closed", "partially_refunded", "refunded"},
    "paid": {"partially_refunded", "refunded"},
    "partially_refunded": {"refunded"},
    "failed": TERMINAL,
    "closed": TERMINAL,
    "refunded": TERMINAL,
}
PAYMENT_NEXT = {
    "initiated": {"pending", "unknown", "succeeded", "failed", "cancelled"},
    "pending": {"unknown", "succeeded", "failed", "cancelled"},
    "unknown": {"pending", "succeeded", "failed", "cancelled"},
    "succeeded": TERMINAL,
    "failed": TERMINAL,
    "cancelled": TERMINAL,
}
REFUND_NEXT = {"processing": {"succeeded", "failed"}, "succeeded": TERMINAL, "failed": TERMINAL}
PRE_AUTHORIZATION_NEXT = {
    "pending": {"authorized", "partially_captured", "completed", "released", "expired", "failed"},
    "authorized": {"partially_captured", "completed", "released", "expired"},
    "partially_captured": {"completed", "expired"},
    "completed": TERMINAL,
    "released": TERMINAL,
    "expired": TERMINAL,
    "failed": TERMINAL,
}
NEXT = {
    "order": ORDER_NEXT,
    "payment": PAYMENT_NEXT,
    "refund": REFUND_NEXT,
    "preauthorization": PRE_AUTHORIZATION_NEXT,
    "preauthorizationrelease": REFUND_NEXT,
}
FIRST_STATUS = {"order": "pending", "payment": "initiated", "refund": "processing", "preauthorization": "pending"}
# Amounts that only ever grow.
MONOTONE = {
    "order": ("paid_amount", "refunded_amount"),
    "preauthorization": ("captured_amount", "released_amount"),
}
SETTLED_ORDER = frozenset({"paid", "partially_refunded", "refunded"})
FINAL_PRE_AUTHORIZATION = frozenset({"completed", "released", "expired", "failed"})
WALLET_SILENT = frozenset({NotificationStatus.ANOMALY, NotificationStatus.FAILED})


class Violations(AssertionError):
    """Every invariant an audit found broken, one line each."""

    def __init__(self, found: list[str]) -> None:
        super().__init__(f"{len(found)} invariant violation(s):\n" + "\n".join(found))
        self.count = len(found)


@dataclasses.dataclass
class History:
    """What the audits of one example saw before: statuses and amounts per row, the last event read."""

    statuses: dict[tuple[str, int], str] = dataclasses.field(default_factory=dict)
    amounts: dict[tuple[str, int, str], int] = dataclasses.field(default_factory=dict)
    chain: dict[tuple[str, int], str] = dataclasses.field(default_factory=dict)
    last_event: int = 0
    last_webhook: int = 0


@dataclasses.dataclass
class Books:
    """One order as both parties record it."""

    order: Order
    seller: Seller
    payments: list[Payment]
    refunds: list[Refund]
    pre_authorization: PreAuthorization | None
    releases: list[PreAuthorizationRelease]
    wallet: WalletTruth

    @property
    def request_ids(self) -> set[str]:
        ids = {payment.payment_request_id for payment in self.payments}
        ids |= {refund.refund_request_id for refund in self.refunds}
        ids |= {release.out_request_no for release in self.releases}
        if self.pre_authorization is not None:
            ids |= {self.pre_authorization.out_order_no, self.pre_authorization.out_request_no}
        return ids

    @property
    def in_flight(self) -> bool:
        """A refund, capture or release whose outcome the platform is still waiting for."""
        return (
            any(refund.status == "processing" for refund in self.refunds)
            or any(p.pre_authorization_id and p.status in ("initiated", "unknown") for p in self.payments)
            or any(release.status == "processing" for release in self.releases)
        )

    @property
    def final(self) -> bool:
        """The platform considers every amount of this order known: nothing can move it without a new request."""
        if self.in_flight:
            return False
        if self.pre_authorization is not None:
            return self.pre_authorization.status in FINAL_PRE_AUTHORIZATION
        return self.order.status in SETTLED_ORDER | {"failed", "closed"}


def books_of(orders: dict[int, Seller]) -> list[Books]:
    """Both parties' records of ``orders`` (order pk → the seller that placed it), in a few queries."""
    rows = Order.objects.unscoped().filter(pk__in=orders).defer("metadata", "items").order_by("pk")
    children = defaultdict(lambda: defaultdict(list))
    payments = Payment.objects.unscoped().defer("order_str", "payment_url")
    for queryset, name in (
        (payments, "payments"),
        (Refund.objects, "refunds"),
        (PreAuthorizationRelease.objects, "releases"),
    ):
        for child in queryset.unscoped().filter(order_id__in=orders).order_by("pk"):
            children[child.order_id][name].append(child)
    pre_authorizations = {
        pre.order_id: pre
        for pre in PreAuthorization.objects.unscoped().filter(order_id__in=orders).defer("order_str", "payment_url")
    }
    request_ids = {payment.payment_request_id for kids in children.values() for payment in kids["payments"]}
    request_ids |= {pre.out_order_no for pre in pre_authorizations.values()}
    wallet = WalletBooks(client_ids={seller.client_id for seller in orders.values()}, request_ids=request_ids)
    books = []
    for order in rows:
        kids, pre = children[order.pk], pre_authorizations.get(order.pk)
        if pre is not None:
            truth = wallet.of_pre_authorization(pre.out_order_no)
        else:
            truth = wallet.of_payment_order([payment.payment_request_id for payment in kids["payments"]])
        books.append(Books(order, orders[order.pk], kids["payments"], kids["refunds"], pre, kids["releases"], truth))
    return books


def audit(
    books: list[Books], history: History, *, start_balances: dict[str, int], inbox_after: int, sellers: list[Seller]
) -> int:
    """Check every invariant over ``books``; raise ``Violations`` naming each broken one. Returns how many
    checks were made."""
    found: list[str] = []
    checks = 0

    def check(condition: bool, message: str) -> None:
        nonlocal checks
        checks += 1
        if not condition:
            found.append(message)

    for entry in books:
        _platform_adds_up(entry, check)
        _platform_never_ahead_of_wallet(entry, check)
        if entry.final:
            _final_books_agree(entry, check)
        _same_tenant(entry, check)
        _nothing_regresses(entry, history, check)
    _events_follow_the_rules(books, history, check)
    _webhooks_and_inbox_stay_with_their_tenant(books, history, inbox_after, check)
    _balances_move_with_the_books(books, start_balances, sellers, check)
    if found:
        raise Violations(found)
    return checks


def _platform_adds_up(entry: Books, check) -> None:
    order, name = entry.order, entry.order.public_id
    check(
        0 <= order.refunded_amount <= order.paid_amount <= order.amount,
        f"{name}: refunded {order.refunded_amount} / paid {order.paid_amount} / amount {order.amount} out of order",
    )
    succeeded = sum(refund.amount for refund in entry.refunds if refund.status == "succeeded")
    committed = sum(refund.amount for refund in entry.refunds if refund.status in ("processing", "succeeded"))
    check(succeeded == order.refunded_amount, f"{name}: refunds {succeeded} != refunded_amount {order.refunded_amount}")
    check(committed <= order.paid_amount, f"{name}: refunds committed {committed} > paid {order.paid_amount}")
    for payment in entry.payments:
        of_payment = sum(r.amount for r in entry.refunds if r.payment_id == payment.pk and r.status != "failed")
        check(
            of_payment == 0 or (payment.status == "succeeded" and of_payment <= payment.amount),
            f"{name}: payment {payment} ({payment.status}, {payment.amount}) carries refunds of {of_payment}",
        )
    captured = sum(p.amount for p in entry.payments if p.pre_authorization_id and p.status == "succeeded")
    pre = entry.pre_authorization
    if pre is None:
        paid = sum(p.amount for p in entry.payments if p.status == "succeeded")
        check(paid == order.paid_amount, f"{name}: payments succeeded {paid} != paid_amount {order.paid_amount}")
        check(
            (order.status in SETTLED_ORDER) == (order.paid_amount == order.amount),
            f"{name}: {order.status} with {order.paid_amount} of {order.amount} paid",
        )
        return
    check(
        pre.captured_amount + pre.released_amount <= pre.amount,
        f"{name}: captured {pre.captured_amount} + released {pre.released_amount} > frozen {pre.amount}",
    )
    check(
        captured == pre.captured_amount == order.paid_amount,
        f"{name}: captures {captured}, pre-authorization {pre.captured_amount}, order paid {order.paid_amount}",
    )
    released = sum(release.amount for release in entry.releases if release.status == "succeeded")
    check(released <= pre.released_amount, f"{name}: releases {released} > released_amount {pre.released_amount}")


def _platform_never_ahead_of_wallet(entry: Books, check) -> None:
    """What the platform records as done, the wallet did: never a payment, capture, refund or release the
    wallet has no record of, and nothing at the wallet the platform had not stored before asking."""
    name, wallet, pre = entry.order.public_id, entry.wallet, entry.pre_authorization
    for payment in entry.payments:
        at_wallet = wallet.payment_ids.get(payment.payment_request_id)
        if payment.status == "succeeded":
            check(at_wallet == payment.amount, f"{name}: {payment} succeeded, the wallet has {at_wallet}")
        if payment.status in ("failed", "cancelled") and payment.pre_authorization_id:
            check(at_wallet is None, f"{name}: capture {payment} {payment.status}, the wallet captured {at_wallet}")
    known = {payment.payment_request_id: payment.amount for payment in entry.payments}
    for request_id, amount in wallet.payment_ids.items():
        check(known.get(request_id) == amount, f"{name}: the wallet took {amount} under {request_id}, unknown here")
    refunds = {refund.refund_request_id: refund for refund in entry.refunds}
    for refund in entry.refunds:
        at_wallet = wallet.refund_ids.get(refund.refund_request_id)
        if refund.status == "succeeded":
            check(at_wallet == refund.amount, f"{name}: refund {refund} succeeded, the wallet has {at_wallet}")
        if refund.status == "failed":
            check(at_wallet is None, f"{name}: refund {refund} failed, the wallet refunded {at_wallet}")
    for request_id, amount in wallet.refund_ids.items():
        stored = refunds.get(request_id)
        check(
            stored is not None and stored.amount == amount,
            f"{name}: the wallet refunded {amount} under {request_id}, which the platform never stored",
        )
    order = entry.order
    check(order.paid_amount <= wallet.paid, f"{name}: paid {order.paid_amount} > the wallet's {wallet.paid}")
    check(
        order.refunded_amount <= wallet.refunded,
        f"{name}: refunded {order.refunded_amount} > the wallet's {wallet.refunded}",
    )
    if pre is None:
        return
    if pre.status in ("authorized", "partially_captured", "completed"):
        check(wallet.frozen == pre.amount, f"{name}: {pre.status}, the wallet froze {wallet.frozen} of {pre.amount}")
    check(
        pre.captured_amount <= wallet.captured,
        f"{name}: captured {pre.captured_amount} > the wallet's {wallet.captured}",
    )
    check(
        pre.released_amount <= wallet.released,
        f"{name}: {pre.status} with {pre.released_amount} released; the wallet gave back {wallet.released} "
        f"and still holds {wallet.still_frozen}",
    )
    releases = {release.out_request_no: release for release in entry.releases}
    for out_request_no, amount in wallet.release_ids.items():
        stored = releases.get(out_request_no)
        check(
            stored is not None and stored.amount == amount,
            f"{name}: the wallet unfroze {amount} under {out_request_no}, which the platform never stored",
        )


def _final_books_agree(entry: Books, check) -> None:
    """An order the platform considers final is, to the minor unit, what the wallet's ledger says."""
    order, wallet, name = entry.order, entry.wallet, entry.order.public_id
    label = f"{name} ({order.status}, final)"
    check(order.paid_amount == wallet.paid, f"{label}: paid {order.paid_amount}, the wallet {wallet.paid}")
    check(
        order.refunded_amount == wallet.refunded,
        f"{label}: refunded {order.refunded_amount}, the wallet {wallet.refunded}",
    )
    pre = entry.pre_authorization
    if pre is None:
        return
    check(
        pre.captured_amount == wallet.captured and not wallet.still_frozen,
        f"{label}: captured {pre.captured_amount}, the wallet {wallet.captured} (still frozen there: "
        f"{wallet.still_frozen})",
    )
    if pre.authorized_at is not None:  # one that lapsed unseen reads as never authorised at the wallet
        check(
            pre.released_amount == wallet.released,
            f"{label}: released {pre.released_amount}, the wallet gave back {wallet.released}",
        )
    if pre.status == "failed":
        check(not wallet.frozen, f"{label}: pre-authorization failed, yet the wallet froze {wallet.frozen}")


def _same_tenant(entry: Books, check) -> None:
    order, seller, name = entry.order, entry.seller, entry.order.public_id
    tenant = (seller.isv_id, seller.merchant_id)
    check((order.isv_id, order.merchant_id) == tenant, f"{name}: placed by {seller.label}, stored for another")
    rows = [*entry.payments, *entry.refunds, *entry.releases]
    if entry.pre_authorization is not None:
        rows.append(entry.pre_authorization)
    for row in rows:
        check((row.isv_id, row.merchant_id) == tenant, f"{name}: {row} carries another tenant")
    check(
        entry.wallet.clients <= {seller.client_id},
        f"{name}: of {seller.label}, yet at the wallet under {sorted(entry.wallet.clients)}",
    )


def _nothing_regresses(entry: Books, history: History, check) -> None:
    """Terminal states stay; every status moves only forward; paid, refunded, captured, released only grow."""
    rows = [("order", entry.order), *[("payment", p) for p in entry.payments], *[("refund", r) for r in entry.refunds]]
    rows += [("preauthorizationrelease", release) for release in entry.releases]
    if entry.pre_authorization is not None:
        rows.append(("preauthorization", entry.pre_authorization))
    for kind, row in rows:
        key = (kind, row.pk)
        before = history.statuses.get(key)
        check(
            before is None or row.status == before or row.status in NEXT[kind][before],
            f"{entry.order.public_id}: {kind} {row} went from {before} back to {row.status}",
        )
        history.statuses[key] = row.status
        for field in MONOTONE.get(kind, ()):
            value, seen = getattr(row, field), history.amounts.get((kind, row.pk, field), 0)
            check(value >= seen, f"{entry.order.public_id}: {kind} {field} fell from {seen} to {value}")
            history.amounts[(kind, row.pk, field)] = value


def _events_follow_the_rules(books: list[Books], history: History, check) -> None:
    """The append-only event log: every move is allowed and starts where the previous one of that row ended
    (so a regression undone within one step still shows), and carries its order's tenant."""
    tenants = {entry.order.pk: (entry.order.isv_id, entry.order.merchant_id) for entry in books}
    events = PaymentEvent.objects.unscoped().filter(order_id__in=tenants, pk__gt=history.last_event).order_by("pk")
    for event in events:
        history.last_event = event.pk
        check(
            (event.isv_id, event.merchant_id) == tenants[event.order_id],
            f"event {event.public_id} of order {event.order_id} carries another tenant",
        )
        if event.from_status == event.to_status or event.subject not in FIRST_STATUS:
            continue
        row = {
            "order": event.order_id,
            "payment": event.payment_id,
            "refund": event.refund_id,
            "preauthorization": event.pre_authorization_id,
        }[event.subject]
        key = (event.subject, row)
        previous = history.chain.get(key, FIRST_STATUS[event.subject])
        check(
            event.from_status == previous and event.to_status in NEXT[event.subject][event.from_status],
            f"event {event.public_id}: {event.subject} {row} {event.from_status} → {event.to_status} "
            f"(it was {previous})",
        )
        history.chain[key] = event.to_status


def _webhooks_and_inbox_stay_with_their_tenant(books: list[Books], history: History, inbox_after: int, check):
    orders = {entry.order.public_id: entry.order for entry in books}
    named = Q(data__id__in=list(orders)) | Q(data__order__in=list(orders))
    for event in WebhookEvent.objects.unscoped().filter(named, pk__gt=history.last_webhook).order_by("pk"):
        history.last_webhook = event.pk
        order = orders.get(event.data.get("order") or event.data.get("id"))
        check(
            order is not None
            and (event.isv_id, event.merchant_id) == (order.isv_id, order.merchant_id)
            and event.mini_program_id in (None, order.mini_program_id),
            f"webhook event {event.public_id} ({event.type}) carries another tenant than {order}",
        )
    owners = {request_id: entry.order for entry in books for request_id in entry.request_ids}
    arrived = (
        InboundNotification.objects.unscoped()
        .filter(pk__gt=inbox_after)
        .exclude(dedupe_key=None)
        .only("public_id", "isv_id", "merchant_id", "subject", "status", "outcome")
    )
    for notification in arrived:
        order = owners.get(notification.subject)
        if order is None:
            continue  # an operation id (an unfreeze's), named by its out_request_no in the body
        check(
            (notification.isv_id, notification.merchant_id) == (order.isv_id, order.merchant_id),
            f"notification {notification.public_id} about {order.public_id} stored for another tenant",
        )
        check(
            notification.status not in WALLET_SILENT,
            f"notification {notification.public_id} about {order.public_id} not applied: {notification.status} "
            f"({notification.outcome})",
        )


def _balances_move_with_the_books(books: list[Books], start: dict[str, int], sellers: list[Seller], check) -> None:
    """The wallet's balances moved by exactly this example's money: each merchant's by what it was paid less
    what it refunded; the users' by the opposite, less what is still frozen. Once every order is final at the
    platform, the merchants' balances moved by exactly what the platform records."""
    now = balances([seller.client_id for seller in sellers])
    users = 0
    for seller in sellers:
        mine = [entry for entry in books if entry.seller is seller]
        wallet_net = sum(entry.wallet.paid - entry.wallet.refunded for entry in mine)
        moved = now[seller.client_id] - start[seller.client_id]
        check(moved == wallet_net, f"{seller.label}: balance moved {moved}, its orders at the wallet net {wallet_net}")
        if all(entry.final for entry in mine):
            recorded = sum(entry.order.paid_amount - entry.order.refunded_amount for entry in mine)
            check(moved == recorded, f"{seller.label}: balance moved {moved}, the platform records {recorded}")
        users -= wallet_net + sum(entry.wallet.still_frozen for entry in mine)
    check(now["users"] - start["users"] == users, f"users: balances moved {now['users'] - start['users']}, not {users}")


def is_settled(entry: Books) -> bool:
    """Nothing more can happen to this order: final at the platform, and nothing left frozen at the wallet."""
    if entry.in_flight or entry.wallet.still_frozen:
        return False
    if entry.order.kind == OrderKind.PRE_AUTHORIZATION:
        return entry.pre_authorization.status in FINAL_PRE_AUTHORIZATION
    return entry.order.status in SETTLED_ORDER | {"failed", "closed"}
