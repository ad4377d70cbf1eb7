from tests.payments.conftest import shop, wallet  # noqa: F401 - the merchant ready to take payments
from tests.worker import celery_worker  # noqa: F401 - a real worker, for the tests that need one
