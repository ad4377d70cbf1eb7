import socket

import pytest

from apps.accounts.services import api_key_authenticate
from apps.core.errors import ApplicationError, NotFoundError
from apps.merchants.models import RegistrationStatus
from apps.miniprograms import selectors, services
from apps.miniprograms.models import Feature, MiniProgram, MiniProgramStatus
from tests.miniprograms.conftest import license_verified


def _principal(key: str, merchant=None):
    return api_key_authenticate(secret=key, merchant_public_id=merchant.public_id if merchant else None)


def _fresh(mini_program) -> MiniProgram:
    # The gate reads relations (license, registration, features): start from the database, as a caller would.
    return MiniProgram.objects.unscoped().get(pk=mini_program.pk)


# --- lists and lookups -----------------------------------------------------------------------------


def test_a_merchant_sees_its_own_mini_programs_and_products_only(world):
    principal = _principal(world.a.merchants[0].key)
    assert [mp.app_id for mp in selectors.mini_program_list(principal=principal)] == ["canary-app-a1"]
    assert [product.sku for product in selectors.product_list(principal=principal)] == ["canary-sku-a1"]


def test_an_isv_key_sees_all_its_merchants_and_one_when_it_names_it(world):
    isv_wide = _principal(world.a.key)
    assert sorted(mp.app_id for mp in selectors.mini_program_list(principal=isv_wide)) == [
        "canary-app-a1",
        "canary-app-a2",
    ]
    named = _principal(world.a.key, world.a.merchants[1].merchant)
    assert [product.sku for product in selectors.product_list(principal=named)] == ["canary-sku-a2"]


def test_lists_filter_by_status_super_app_activity_and_sku(world, mini_program, product):
    principal = _principal(world.a.key)
    services.mini_program_update(mini_program=mini_program, status=MiniProgramStatus.SUSPENDED)
    services.product_update(product=product, active=False)
    assert [mp.app_id for mp in selectors.mini_program_list(principal=principal, status="suspended")] == [
        "canary-app-a1"
    ]
    assert len(selectors.mini_program_list(principal=principal, super_app="world-wallet")) == 2
    assert not selectors.mini_program_list(principal=principal, super_app="elsewhere").exists()
    assert [p.sku for p in selectors.product_list(principal=principal, active=False)] == ["canary-sku-a1"]
    assert [p.sku for p in selectors.product_list(principal=principal, active=True)] == ["canary-sku-a2"]
    assert [p.sku for p in selectors.product_list(principal=principal, sku="canary-sku-a2")] == ["canary-sku-a2"]


def test_another_tenants_mini_program_or_product_is_not_found(world, mini_program, product):
    for key, merchant in ((world.b.key, None), (world.a.merchants[1].key, None), (world.a.key, world.a.merchants[1])):
        principal = _principal(key, merchant.merchant if merchant else None)
        with pytest.raises(NotFoundError) as error:
            selectors.mini_program_get(principal=principal, mini_program_id=mini_program.public_id)
        assert error.value.code == "miniprograms.mini_program_not_found"
        with pytest.raises(NotFoundError) as error:
            selectors.product_get(principal=principal, product_id=product.public_id)
        assert error.value.code == "miniprograms.product_not_found"


def test_a_list_page_reads_features_in_one_query(world, django_assert_num_queries):
    principal = _principal(world.a.key)
    with django_assert_num_queries(2):  # mini programs with their super apps, then all their features
        assert all(mp.features.all() for mp in selectors.mini_program_list(principal=principal))


# --- the payment gate ------------------------------------------------------------------------------


def test_the_gate_refuses_a_merchant_without_a_verified_license(world, mini_program):
    with pytest.raises(ApplicationError) as error:
        selectors.mini_program_gate(mini_program=_fresh(mini_program))
    assert error.value.code == "merchants.license_not_verified"


def test_the_gate_refuses_a_license_still_under_review(world, mini_program):
    license_verified(mini_program.merchant, mini_program.super_app, status=RegistrationStatus.UNDER_REVIEW)
    with pytest.raises(ApplicationError) as error:
        selectors.mini_program_gate(mini_program=_fresh(mini_program))
    assert error.value.code == "merchants.license_not_verified"


def test_the_gate_refuses_an_expired_license(world, mini_program):
    license_verified(mini_program.merchant, mini_program.super_app, expires_in_days=-1)
    with pytest.raises(ApplicationError) as error:
        selectors.mini_program_gate(mini_program=_fresh(mini_program))
    assert error.value.code == "merchants.license_expired"


def test_the_gate_checks_the_license_before_the_suspension(world, mini_program):
    services.mini_program_update(mini_program=mini_program, status=MiniProgramStatus.SUSPENDED)
    with pytest.raises(ApplicationError) as error:
        selectors.mini_program_gate(mini_program=_fresh(mini_program))
    assert error.value.code == "merchants.license_not_verified"


def test_the_gate_refuses_a_suspended_mini_program(world, mini_program):
    license_verified(mini_program.merchant, mini_program.super_app)
    services.mini_program_update(mini_program=mini_program, status=MiniProgramStatus.SUSPENDED)
    with pytest.raises(ApplicationError) as error:
        selectors.mini_program_gate(mini_program=_fresh(mini_program))
    assert error.value.code == "miniprograms.suspended"


def test_the_gate_refuses_a_feature_never_added(world, mini_program):
    license_verified(mini_program.merchant, mini_program.super_app)
    with pytest.raises(ApplicationError) as error:
        selectors.mini_program_gate(mini_program=_fresh(mini_program), feature=Feature.PRE_AUTHORIZATION)
    assert error.value.code == "miniprograms.feature_not_enabled"


def test_the_gate_refuses_a_feature_switched_off(world, mini_program):
    license_verified(mini_program.merchant, mini_program.super_app)
    services.feature_set(mini_program=mini_program, feature=Feature.USER_INFO, enabled=True)
    services.feature_set(mini_program=mini_program, feature=Feature.USER_INFO, enabled=False)
    with pytest.raises(ApplicationError) as error:
        selectors.mini_program_gate(mini_program=_fresh(mini_program), feature=Feature.USER_INFO)
    assert error.value.code == "miniprograms.feature_not_enabled"


def test_the_gate_refuses_payment_when_its_row_is_missing(world, mini_program):
    """Fail closed: a mini program whose payment row was lost (not through a service) does not pay."""
    license_verified(mini_program.merchant, mini_program.super_app)
    mini_program.features.filter(feature=Feature.PAYMENT).delete()
    with pytest.raises(ApplicationError) as error:
        selectors.mini_program_gate(mini_program=_fresh(mini_program))
    assert error.value.code == "miniprograms.feature_not_enabled"


@pytest.mark.parametrize("status", [MiniProgramStatus.DEVELOPMENT, MiniProgramStatus.PUBLISHED])
def test_the_gate_lets_a_verified_merchants_mini_program_pay_without_touching_the_network(
    world, mini_program, monkeypatch, django_assert_max_num_queries, status
):
    license_verified(mini_program.merchant, mini_program.super_app)
    services.mini_program_update(mini_program=mini_program, status=status)
    services.feature_set(mini_program=mini_program, feature=Feature.PRE_AUTHORIZATION, enabled=True)

    def no_network(*args, **kwargs):
        raise AssertionError("the gate opened a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    for feature in (Feature.PAYMENT, Feature.PRE_AUTHORIZATION):
        gated = _fresh(mini_program)
        with django_assert_max_num_queries(5):  # merchant, super app, registration, license, feature
            selectors.mini_program_gate(mini_program=gated, feature=feature)


def test_the_gate_reads_the_license_at_the_mini_programs_own_super_app(world, mini_program, order_str_only):
    license_verified(mini_program.merchant, order_str_only)  # verified elsewhere only
    with pytest.raises(ApplicationError) as error:
        selectors.mini_program_gate(mini_program=_fresh(mini_program))
    assert error.value.code == "merchants.license_not_verified"
