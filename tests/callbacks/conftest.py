from tests.payments.conftest import shop, wallet  # noqa: F401 - the merchant ready to take payments
