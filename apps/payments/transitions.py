"""Every allowed status move of orders and payments, in one place.

An unknown outcome is never a failure: ``unknown`` only leaves by what the wallet says (inquiry, notify).
"""

from .models import OrderStatus as O
from .models import PaymentStatus as P
from .models import RefundStatus as R

ORDER: dict[str, frozenset[str]] = {
    O.PENDING: frozenset({O.PROCESSING, O.PAID, O.FAILED, O.CLOSED}),
    O.PROCESSING: frozenset({O.PENDING, O.PAID, O.FAILED, O.CLOSED}),
    O.PAID: frozenset({O.PARTIALLY_REFUNDED, O.REFUNDED}),
    O.PARTIALLY_REFUNDED: frozenset({O.REFUNDED}),
    O.FAILED: frozenset(),
    O.CLOSED: frozenset(),
    O.REFUNDED: frozenset(),
}

PAYMENT: dict[str, frozenset[str]] = {
    P.INITIATED: frozenset({P.PENDING, P.UNKNOWN, P.FAILED, P.CANCELLED}),
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
