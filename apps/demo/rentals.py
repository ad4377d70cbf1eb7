"""The demo rental shop's server: what a merchant's server does when a ride ends. It prices the ride from
the time since the user authorised the deposit and captures that much; the capture gives the rest of the
deposit back. A mini program cannot capture (a user session may not), so the demo page asks this server."""

from __future__ import annotations

import datetime
import math

from django.utils import timezone

from apps.payments import preauthorizations
from apps.payments.models import PreAuthorization

# How long one unit of each rental product lasts; a started unit is charged in full.
RENTAL_UNITS = {"bike-hour": datetime.timedelta(hours=1), "scooter-day": datetime.timedelta(days=1)}


def rental_price(*, pre_authorization: PreAuthorization, ended_at: datetime.datetime) -> int:
    """What the ride costs in minor units: per product line, the started units times the unit price, never
    more than is still frozen. A line of a product that is not rented by time costs its full deposit."""
    started_at = pre_authorization.authorized_at or pre_authorization.created_at
    elapsed = max(ended_at - started_at, datetime.timedelta(0))
    cost = 0
    for line in pre_authorization.order.items:
        unit = RENTAL_UNITS.get(line["sku"])
        used = line["quantity"] if unit is None else max(1, math.ceil(elapsed / unit))
        cost += min(used, line["quantity"]) * line["unit_price"]
    return min(cost, pre_authorization.remaining_amount)


def rental_stop(*, pre_authorization: PreAuthorization) -> PreAuthorization:
    """End the ride: capture its price as the last capture (the wallet releases what is left)."""
    preauthorizations.preauthorization_capture(
        pre_authorization=pre_authorization,
        amount=rental_price(pre_authorization=pre_authorization, ended_at=timezone.now()),
        final=True,
    )
    pre_authorization.refresh_from_db()
    return pre_authorization
