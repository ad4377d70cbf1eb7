import threading

import pytest
from django.db import connection

from apps.core.errors import ConflictError
from apps.merchants.models import Merchant
from apps.merchants.services import isv_create, merchant_create
from tests.factories import IsvFactory


def test_merchant_names_are_unique_per_isv_not_platform_wide(db):
    first, second = IsvFactory(), IsvFactory()
    merchant_create(isv=first, name="Coffee")
    merchant_create(isv=second, name="Coffee")
    with pytest.raises(ConflictError) as error:
        merchant_create(isv=first, name="Coffee")
    assert error.value.code == "merchants.merchant_name_taken"
    assert Merchant.objects.unscoped().filter(name="Coffee").count() == 2


def test_isv_names_are_unique(db):
    isv_create(name="Acme")
    with pytest.raises(ConflictError) as error:
        isv_create(name="Acme")
    assert error.value.code == "merchants.isv_name_taken"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_onboarding_of_one_name_creates_exactly_one_merchant():
    isv = IsvFactory()
    barrier = threading.Barrier(8)
    outcomes = []

    def onboard():
        barrier.wait()
        try:
            merchant_create(isv=isv, name="Race Coffee")
            outcomes.append("created")
        except ConflictError:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=onboard) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["created"]
    assert Merchant.objects.unscoped().filter(isv=isv, name="Race Coffee").count() == 1
