# A merchant ready to take payments at the sandbox, as for the order tests.
from tests.payments.conftest import shop, wallet  # noqa: F401
