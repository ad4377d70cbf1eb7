"""Money: integer minor units with an ISO 4217 code. Exponents come from the ``iso4217`` package.

The super app's wire format is ``{"currency": "USD", "value": "1000"}`` — the value a string of the
integer amount in minor units; classic gateway amounts are decimal strings in major units ("10.00").
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Context, Decimal

from iso4217 import Currency

from apps.core.errors import ApplicationError

_DIGITS = re.compile(r"^[0-9]{1,18}$")
#: A major-unit amount as people and the classic gateway write it: digits, an optional fraction, no sign or
#: exponent (``-1``, ``1e309`` and ``NaN`` are no amount).
_MAJOR = re.compile(r"^[0-9]{1,18}(\.[0-9]{1,18})?$")
_EXACT = Context(prec=40)


def currency_exponent(code: str) -> int:
    """The number of minor-unit digits of ``code`` (JPY 0, USD 2, KWD 3). Unknown or non-money → error."""
    try:
        exponent = Currency(code).exponent if code.isupper() else None
    except ValueError:
        exponent = None
    if exponent is None:
        raise ApplicationError("money.unknown_currency", f"{code!r} is not an ISO 4217 currency.", attr="currency")
    return exponent


@dataclasses.dataclass(frozen=True, slots=True)
class Money:
    """An amount in the currency's minor unit; never a float."""

    value: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            raise TypeError("Money.value must be an int of minor units")
        currency_exponent(self.currency)

    def to_wire(self) -> dict[str, str]:
        return {"currency": self.currency, "value": str(self.value)}

    @classmethod
    def from_wire(cls, amount: object) -> Money:
        """Parse the wire ``Amount``; anything but a currency and a string of digits is refused."""
        if not isinstance(amount, dict) or not isinstance(amount.get("value"), str):
            raise ApplicationError("money.invalid_amount", "An amount is {'currency', 'value'} with a string value.")
        if not _DIGITS.match(amount["value"]) or not isinstance(amount.get("currency"), str):
            raise ApplicationError("money.invalid_amount", f"Invalid amount {amount!r}.")
        return cls(value=int(amount["value"]), currency=amount["currency"])

    def to_major(self) -> Decimal:
        """The amount in major units, exact (``Decimal("12.34")``)."""
        return Decimal(self.value).scaleb(-currency_exponent(self.currency))

    def to_major_string(self) -> str:
        exponent = currency_exponent(self.currency)
        return f"{self.to_major():.{exponent}f}"

    @classmethod
    def from_major(cls, amount: str, currency: str) -> Money:
        """Parse a major-unit decimal string; extra decimals are an error, never rounded."""
        exponent = currency_exponent(currency)
        if not isinstance(amount, str) or not _MAJOR.match(amount):
            raise ApplicationError(
                "money.invalid_amount",
                f"Invalid amount {amount!r}: write digits, with a decimal point if needed (12.50).",
            )
        minor = Decimal(amount).scaleb(exponent, context=_EXACT)  # 36 digits at most: never rounded
        if minor != minor.to_integral_value():
            raise ApplicationError(
                "money.invalid_amount", f"{amount!r} has more decimals than {currency} allows ({exponent})."
            )
        if not _DIGITS.match(str(int(minor))):
            raise ApplicationError("money.invalid_amount", f"{amount!r} is larger than any amount the wallet takes.")
        return cls(value=int(minor), currency=currency)

    def __str__(self) -> str:
        return f"{self.to_major_string()} {self.currency}"
