from tests.payments.conftest import shop, wallet  # noqa: F401 - a merchant at the sandbox, the sandbox itself
