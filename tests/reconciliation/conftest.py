"""The sandbox wallet over real HTTP and a merchant ready to take payments at it."""

from tests.payments.conftest import shop, wallet  # noqa: F401
