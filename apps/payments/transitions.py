"""Every allowed status move of orders, payments, refunds and pre-authorizations, in one place.

An unknown outcome is never a failure: ``unknown`` only leaves by what the wallet says (inquiry, notify).
A pre-authorization's order is ``authorized`` while its funds are frozen, ``paid`` from its first capture.
"""

from .models import OrderStatus as O
from .models import PaymentStatus as P
from .models import PreAuthorizationStatus as A
from .models import RefundStatus as R
from .models import ReleaseStatus as L

ORDER: dict[str, frozenset[str]] = {
    O.PENDING: frozenset({O.PROCESSING, O.AUTHORIZED, O.PAID, O.FAILED, O.CLOSED}),
    O.AUTHORIZED: frozenset({O.PAID, O.CLOSED}),
    O.PROCESSING: frozenset({O.PENDING, O.PAID, O.FAILED, O.CLOSED}),
    O.PAID: frozenset({O.PARTIALLY_REFUNDED, O.REFUNDED}),
    O.PARTIALLY_REFUNDED: frozenset({O.REFUNDED}),
    O.FAILED: frozenset(),
    O.CLOSED: frozenset(),
    O.REFUNDED: frozenset(),
}

PAYMENT: dict[str, frozenset[str]] = {
    P.INITIATED: frozenset({P.PENDING, P.UNKNOWN, P.SUCCEEDED, P.FAILED, P.CANCELLED}),
    P.PENDING: frozenset({P.UNKNOWN, P.SUCCEEDED, P.FAILED, P.CANCELLED}),
    P.UNKNOWN: frozenset({P.PENDING, P.SUCCEEDED, P.FAILED, P.CANCELLED}),
    P.SUCCEEDED: frozenset(),
    P.FAILED: frozenset(),
    P.CANCELLED: frozenset(),
}

REFUND: dict[str, frozenset[str]] = {
    R.PROCESSING: frozenset({R.SUCCEEDED, R.FAILED}),
    R.SUCCEEDED: frozenset(),
    R.FAILED: frozenset(),
}


PRE_AUTHORIZATION: dict[str, frozenset[str]] = {
    A.PENDING: frozenset({A.AUTHORIZED, A.FAILED, A.EXPIRED}),
    A.AUTHORIZED: frozenset({A.PARTIALLY_CAPTURED, A.COMPLETED, A.RELEASED, A.EXPIRED}),
    A.PARTIALLY_CAPTURED: frozenset({A.COMPLETED, A.EXPIRED}),
    A.COMPLETED: frozenset(),
    A.RELEASED: frozenset(),
    A.EXPIRED: frozenset(),
    A.FAILED: frozenset(),
}

RELEASE: dict[str, frozenset[str]] = {
    L.PROCESSING: frozenset({L.SUCCEEDED, L.FAILED}),
    L.SUCCEEDED: frozenset(),
    L.FAILED: frozenset(),
}
