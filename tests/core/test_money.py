from decimal import Decimal

import pytest

from apps.core.errors import ApplicationError
from apps.core.money import Money, currency_exponent


@pytest.mark.parametrize(("code", "exponent"), [("JPY", 0), ("USD", 2), ("KWD", 3), ("IQD", 3), ("CLF", 4)])
def test_exponents_come_from_iso_4217(code, exponent):
    assert currency_exponent(code) == exponent


@pytest.mark.parametrize("code", ["ZZZ", "usd", "XXX", "", "US"])
def test_unknown_or_non_money_currencies_are_refused(code):
    with pytest.raises(ApplicationError) as error:
        currency_exponent(code)
    assert error.value.code == "money.unknown_currency"


def test_wire_round_trip():
    money = Money(value=1050, currency="USD")
    assert money.to_wire() == {"currency": "USD", "value": "1050"}
    assert Money.from_wire({"currency": "USD", "value": "1050"}) == money


@pytest.mark.parametrize(
    "wire",
    [
        {"currency": "USD", "value": 1050},
        {"currency": "USD", "value": "10.50"},
        {"currency": "USD", "value": "-5"},
        {"currency": "USD", "value": "1e3"},
        {"currency": "USD"},
        {"value": "5"},
        "5 USD",
        None,
    ],
)
def test_malformed_wire_amounts_are_refused(wire):
    with pytest.raises(ApplicationError) as error:
        Money.from_wire(wire)
    assert error.value.code in {"money.invalid_amount", "money.unknown_currency"}


def test_major_units_are_exact_and_never_rounded():
    assert Money.from_major("12.34", "USD") == Money(1234, "USD")
    assert Money.from_major("1500", "JPY") == Money(1500, "JPY")
    assert Money.from_major("0.150", "KWD") == Money(150, "KWD")
    assert Money(1234, "USD").to_major() == Decimal("12.34")
    assert Money(5, "KWD").to_major_string() == "0.005"
    assert str(Money(150000, "IQD")) == "150.000 IQD"
    with pytest.raises(ApplicationError):
        Money.from_major("1.5", "JPY")  # a JPY amount of 1.5 yen cannot exist
    with pytest.raises(ApplicationError):
        Money.from_major("NaN", "USD")


@pytest.mark.parametrize(
    "amount",
    [
        "-1",
        "-1e999999999",
        "1e309",
        "1E2",
        "Infinity",
        "+5",
        " 5",
        "5.",
        ".5",
        "1" * 19,
        "9" * 17 + ".99",
        "1.000000000000000001",
    ],
)
def test_major_amounts_that_are_no_amount_are_refused(amount):
    """Signs, exponents and overflowing sizes are refused with the error code, never raised as decimal's own
    exceptions; and a fraction finer than the currency is refused however far down it hides."""
    with pytest.raises(ApplicationError) as error:
        Money.from_major(amount, "USD")
    assert error.value.code == "money.invalid_amount"


def test_money_refuses_floats_and_bools():
    with pytest.raises(TypeError):
        Money(10.5, "USD")
    with pytest.raises(TypeError):
        Money(True, "USD")
