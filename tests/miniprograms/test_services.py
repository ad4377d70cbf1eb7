import threading

import pytest
import time_machine
from django.db import connection

from apps.core import crypto
from apps.core.errors import ApplicationError, ConflictError
from apps.core.money import Money
from apps.miniprograms import services
from apps.miniprograms.models import Feature, MiniProgram, MiniProgramFeature, MiniProgramStatus, Product
from apps.superapps.models import SuperApp, TradePayMode
from tests.miniprograms.conftest import rows


def _create(merchant, super_app, **overrides) -> services.MiniProgramWithSecret:
    fields = {
        "app_id": "2021000000000001",
        "name": "Coffee to go",
        "trade_pay_mode": TradePayMode.PAYMENT_URL,
        "default_currency": "PHP",
        **overrides,
    }
    return services.mini_program_create(merchant=merchant, super_app=super_app, **fields)


def _world_wallet() -> SuperApp:
    return SuperApp.objects.get(code="world-wallet")


# --- mini programs ---------------------------------------------------------------------------------


def test_a_new_mini_program_has_payment_on_and_belongs_to_the_merchants_isv(world):
    merchant = world.a.merchants[0].merchant
    created = _create(merchant, _world_wallet(), webhook_url="https://merchant.example/webhooks")
    mini_program = MiniProgram.objects.unscoped().get(pk=created.mini_program.pk)
    assert (mini_program.isv_id, mini_program.merchant_id) == (merchant.isv_id, merchant.pk)
    assert mini_program.status == MiniProgramStatus.DEVELOPMENT
    assert mini_program.public_id.startswith("mp_")
    features = list(mini_program.features.values_list("feature", "enabled", "isv_id", "merchant_id"))
    assert features == [(Feature.PAYMENT, True, merchant.isv_id, merchant.pk)]


def test_the_webhook_secret_is_revealed_once_and_kept_only_encrypted_and_bound_to_its_row(world, mini_program):
    created = _create(world.a.merchants[0].merchant, _world_wallet())
    stored = MiniProgram.objects.unscoped().get(pk=created.mini_program.pk)
    assert created.webhook_secret.startswith("whsec_")
    assert created.webhook_secret not in stored.webhook_secret_ciphertext
    plaintext = stored.unseal("webhook_secret_ciphertext")
    assert plaintext.decode() == created.webhook_secret
    with pytest.raises(crypto.DecryptionError):  # copied to another row, it is useless
        crypto.decrypt(
            stored.webhook_secret_ciphertext, context=mini_program.encryption_context("webhook_secret_ciphertext")
        )


def test_an_app_id_is_taken_once_per_super_app_whoever_registers_it(world, order_str_only):
    before = (rows(MiniProgram), rows(MiniProgramFeature))
    with pytest.raises(ConflictError) as error:
        _create(world.b.merchants[0].merchant, _world_wallet(), app_id="canary-app-a1")
    assert (error.value.code, error.value.attr) == ("miniprograms.app_id_taken", "app_id")
    assert (rows(MiniProgram), rows(MiniProgramFeature)) == before
    _create(world.b.merchants[0].merchant, order_str_only, app_id="canary-app-a1", trade_pay_mode="order_str")


@pytest.mark.parametrize(
    ("overrides", "code", "attr"),
    [
        ({"app_id": ""}, "validation.blank", "app_id"),
        ({"app_id": "has space"}, "validation.invalid_app_id", "app_id"),
        ({"app_id": "x" * 65}, "validation.max_length", "app_id"),
        ({"name": ""}, "validation.blank", "name"),
        ({"trade_pay_mode": "qr_code"}, "validation.invalid_choice", "trade_pay_mode"),
        ({"default_currency": "usd"}, "validation.unknown_currency", "default_currency"),
        ({"default_currency": "XAU"}, "validation.unknown_currency", "default_currency"),  # no minor unit
        ({"default_currency": "ABC"}, "validation.unknown_currency", "default_currency"),
        ({"webhook_url": "not a url"}, "validation.invalid", "webhook_url"),
    ],
)
def test_invalid_mini_program_fields_are_refused_and_nothing_is_created(world, overrides, code, attr):
    before = (rows(MiniProgram), rows(MiniProgramFeature))
    with pytest.raises(ApplicationError) as error:
        _create(world.a.merchants[0].merchant, _world_wallet(), **overrides)
    assert (error.value.code, error.value.attr) == (code, attr)
    assert (rows(MiniProgram), rows(MiniProgramFeature)) == before


def test_a_trade_pay_mode_the_super_app_does_not_support_is_refused(world, order_str_only, mini_program):
    with pytest.raises(ApplicationError) as error:
        _create(world.a.merchants[0].merchant, order_str_only, trade_pay_mode=TradePayMode.PAYMENT_URL)
    assert (error.value.code, error.value.attr) == ("validation.trade_pay_mode_unsupported", "trade_pay_mode")
    assert not MiniProgram.objects.unscoped().filter(super_app=order_str_only).exists()

    SuperApp.objects.filter(pk=mini_program.super_app_id).update(trade_pay_modes=[TradePayMode.PAYMENT_URL])
    before = rows(MiniProgram)
    with pytest.raises(ApplicationError) as error:
        services.mini_program_update(mini_program=mini_program, trade_pay_mode=TradePayMode.ORDER_STR)
    assert error.value.code == "validation.trade_pay_mode_unsupported"
    assert rows(MiniProgram) == before


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://merchant.example/hook", "validation.webhook_url_insecure"),
        ("https://user:pass@merchant.example/hook", "validation.webhook_url_credentials"),
        ("https://token@merchant.example/hook", "validation.webhook_url_credentials"),
        ("https://127.0.0.1/hook", "validation.webhook_url_private_host"),
        ("https://10.1.2.3/hook", "validation.webhook_url_private_host"),
        ("https://172.16.0.1/hook", "validation.webhook_url_private_host"),
        ("https://192.168.1.1/hook", "validation.webhook_url_private_host"),
        ("https://169.254.169.254/latest/meta-data", "validation.webhook_url_private_host"),
        ("https://100.64.0.1/hook", "validation.webhook_url_private_host"),
        ("https://0.0.0.0/hook", "validation.webhook_url_private_host"),
        ("https://[::1]/hook", "validation.webhook_url_private_host"),
        ("https://[fd00::1]/hook", "validation.webhook_url_private_host"),
        ("https://[::ffff:127.0.0.1]/hook", "validation.webhook_url_private_host"),
        ("https://localhost/hook", "validation.webhook_url_private_host"),
        ("https://api.localhost./hook", "validation.webhook_url_private_host"),
    ],
)
def test_webhook_urls_that_could_reach_inside_the_platform_are_refused(world, mini_program, url, code):
    before = rows(MiniProgram)
    with pytest.raises(ApplicationError) as error:
        services.mini_program_update(mini_program=mini_program, webhook_url=url)
    assert (error.value.code, error.value.attr) == (code, "webhook_url")
    assert rows(MiniProgram) == before


@pytest.mark.parametrize("legacy", ["2130706433", "0x7f.1", "127.1", "0177.0.0.1"])
def test_legacy_spellings_of_loopback_are_private_too(legacy):
    from django.core.exceptions import ValidationError

    from apps.miniprograms.validators import validate_webhook_url

    with pytest.raises(ValidationError) as error:
        validate_webhook_url(f"https://{legacy}/hook")
    assert error.value.code == "webhook_url_private_host"


@pytest.mark.parametrize(
    "url", ["https://merchant.example/hooks?v=1", "https://hooks.merchant.example/x", "https://merchant.example:8443/h"]
)
def test_public_https_webhook_urls_are_accepted(world, mini_program, url):
    assert services.mini_program_update(mini_program=mini_program, webhook_url=url).webhook_url == url


@pytest.mark.parametrize("url", ["https://8.8.8.8:8443/hook", "https://[2001:4860:4860::8888]/hook"])
def test_public_ip_literals_are_refused_too(world, mini_program, url):
    with pytest.raises(ApplicationError) as error:
        services.mini_program_update(mini_program=mini_program, webhook_url=url)
    assert error.value.code == "validation.webhook_url_ip_literal"


def test_plain_http_webhooks_are_for_the_embedded_default_only(world, mini_program, settings):
    settings.PRODUCTION = False
    services.mini_program_update(mini_program=mini_program, webhook_url="http://merchant.example/hook")
    settings.PRODUCTION = True
    with pytest.raises(ApplicationError) as error:
        services.mini_program_update(mini_program=mini_program, webhook_url="http://merchant.example/other")
    assert error.value.code == "validation.webhook_url_insecure"
    mini_program.refresh_from_db()
    assert mini_program.webhook_url == "http://merchant.example/hook"


@pytest.mark.parametrize("switch", ["DEBUG", "WEBHOOK_ALLOW_PRIVATE_HOSTS"])
def test_private_webhook_hosts_are_allowed_when_developing(world, mini_program, settings, switch):
    setattr(settings, switch, True)
    updated = services.mini_program_update(mini_program=mini_program, webhook_url="http://127.0.0.1:8000/hook")
    assert updated.webhook_url == "http://127.0.0.1:8000/hook"


def test_credentials_in_a_webhook_url_are_refused_even_when_developing(world, mini_program, settings):
    settings.DEBUG = True
    with pytest.raises(ApplicationError) as error:
        services.mini_program_update(mini_program=mini_program, webhook_url="http://u:p@127.0.0.1/hook")
    assert error.value.code == "validation.webhook_url_credentials"


def test_an_update_changes_only_what_it_is_given(world, mini_program):
    untouched = {"app_id", "super_app_id", "default_currency", "webhook_secret_ciphertext", "created_at"}
    before = MiniProgram.objects.unscoped().filter(pk=mini_program.pk).values(*untouched).get()
    updated = services.mini_program_update(
        mini_program=mini_program,
        name="Renamed",
        status=MiniProgramStatus.PUBLISHED,
        webhook_url="https://merchant.example/hook",
        trade_pay_mode=TradePayMode.ORDER_STR,
    )
    assert (updated.name, updated.status, updated.webhook_url, updated.trade_pay_mode) == (
        "Renamed",
        "published",
        "https://merchant.example/hook",
        "order_str",
    )
    assert MiniProgram.objects.unscoped().filter(pk=mini_program.pk).values(*untouched).get() == before
    cleared = services.mini_program_update(mini_program=mini_program, webhook_url="")
    assert (cleared.webhook_url, cleared.name) == ("", "Renamed")


def test_an_update_that_changes_nothing_writes_nothing(world, mini_program):
    before = rows(MiniProgram)
    services.mini_program_update(mini_program=mini_program, name=mini_program.name)
    services.mini_program_update(mini_program=mini_program)
    assert rows(MiniProgram) == before


@pytest.mark.parametrize("status", ["published", "suspended", "development"])
def test_any_status_may_follow_any_other(world, mini_program, status):
    for step in ("suspended", status):
        assert services.mini_program_update(mini_program=mini_program, status=step).status == step


def test_an_unknown_status_is_refused(world, mini_program):
    before = rows(MiniProgram)
    with pytest.raises(ApplicationError) as error:
        services.mini_program_update(mini_program=mini_program, status="archived")
    assert (error.value.code, error.value.attr) == ("validation.invalid_choice", "status")
    assert rows(MiniProgram) == before


def test_rotating_the_webhook_secret_replaces_it_at_once(world):
    with time_machine.travel("2030-01-01T00:00:00Z", tick=False):
        created = _create(world.a.merchants[0].merchant, _world_wallet())
    with time_machine.travel("2030-02-01T00:00:00Z", tick=False):
        rotated = services.mini_program_rotate_webhook_secret(mini_program=created.mini_program)
    stored = MiniProgram.objects.unscoped().get(pk=created.mini_program.pk)
    assert rotated.webhook_secret != created.webhook_secret
    assert stored.unseal("webhook_secret_ciphertext").decode() == (rotated.webhook_secret)
    assert stored.webhook_secret_rotated_at.isoformat() == "2030-02-01T00:00:00+00:00"


# --- features --------------------------------------------------------------------------------------


def test_a_feature_is_added_with_the_tenant_of_its_mini_program(world, mini_program):
    row = services.feature_set(mini_program=mini_program, feature=Feature.PRE_AUTHORIZATION, enabled=True)
    assert (row.isv_id, row.merchant_id, row.mini_program_id, row.enabled) == (
        mini_program.isv_id,
        mini_program.merchant_id,
        mini_program.pk,
        True,
    )
    assert row.public_id.startswith("mpf_")


def test_setting_a_feature_to_its_current_state_changes_nothing(world, mini_program):
    services.feature_set(mini_program=mini_program, feature=Feature.USER_INFO, enabled=True)
    before = rows(MiniProgramFeature)
    services.feature_set(mini_program=mini_program, feature=Feature.USER_INFO, enabled=True)
    services.feature_set(mini_program=mini_program, feature=Feature.PAYMENT, enabled=True)
    assert rows(MiniProgramFeature) == before


def test_a_feature_is_switched_off_and_on_in_its_one_row(world, mini_program):
    first = services.feature_set(mini_program=mini_program, feature=Feature.USER_INFO, enabled=True)
    assert not services.feature_set(mini_program=mini_program, feature=Feature.USER_INFO, enabled=False).enabled
    assert services.feature_set(mini_program=mini_program, feature=Feature.USER_INFO, enabled=True).pk == first.pk
    assert mini_program.features.filter(feature=Feature.USER_INFO).count() == 1


def test_payment_cannot_be_switched_off(world, mini_program):
    before = rows(MiniProgramFeature)
    with pytest.raises(ApplicationError) as error:
        services.feature_set(mini_program=mini_program, feature=Feature.PAYMENT, enabled=False)
    assert (error.value.code, error.value.attr) == ("miniprograms.payment_always_enabled", "enabled")
    assert rows(MiniProgramFeature) == before


def test_an_unknown_feature_is_refused(world, mini_program):
    before = rows(MiniProgramFeature)
    with pytest.raises(ApplicationError) as error:
        services.feature_set(mini_program=mini_program, feature="teleport", enabled=True)
    assert (error.value.code, error.value.attr) == ("validation.invalid_choice", "feature")
    assert rows(MiniProgramFeature) == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_to_add_one_feature_leave_exactly_one_row(world):
    mini_program = MiniProgram.objects.unscoped().get(app_id="canary-app-a1")
    barrier = threading.Barrier(6)
    errors = []

    def enable():
        barrier.wait()
        try:
            services.feature_set(mini_program=mini_program, feature=Feature.PRE_AUTHORIZATION, enabled=True)
        except Exception as error:  # any failure is the finding
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=enable) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert mini_program.features.filter(feature=Feature.PRE_AUTHORIZATION).count() == 1


# --- products --------------------------------------------------------------------------------------


def test_a_product_belongs_to_the_merchant_and_its_isv(world):
    merchant = world.a.merchants[0].merchant
    product = services.product_create(merchant=merchant, sku="LATTE-L", name="Latte", price=Money(450, "USD"))
    stored = Product.objects.unscoped().get(pk=product.pk)
    assert (stored.isv_id, stored.merchant_id, stored.price, stored.currency, stored.active) == (
        merchant.isv_id,
        merchant.pk,
        450,
        "USD",
        True,
    )


def test_a_sku_is_unique_within_a_merchants_catalogue_only(world):
    sibling = world.a.merchants[1].merchant
    services.product_create(merchant=sibling, sku="canary-sku-a1", name="Same SKU elsewhere", price=Money(1, "JPY"))
    before = rows(Product)
    with pytest.raises(ConflictError) as error:
        services.product_create(
            merchant=world.a.merchants[0].merchant, sku="canary-sku-a1", name="Again", price=Money(1, "USD")
        )
    assert (error.value.code, error.value.attr) == ("miniprograms.sku_taken", "sku")
    assert rows(Product) == before


@pytest.mark.parametrize(
    ("fields", "code", "attr"),
    [
        ({"price": Money(0, "USD")}, "validation.min_value", "price"),
        ({"price": Money(-5, "USD")}, "validation.min_value", "price"),
        ({"price": Money(10**18, "USD")}, "validation.max_value", "price"),
        ({"sku": ""}, "validation.blank", "sku"),
        ({"sku": "-leading-dash"}, "validation.invalid_sku", "sku"),
        ({"sku": "tab\tinside"}, "validation.invalid_sku", "sku"),
        ({"name": ""}, "validation.blank", "name"),
        ({"name": "n" * 201}, "validation.max_length", "name"),
    ],
)
def test_invalid_products_are_refused_and_nothing_is_created(world, fields, code, attr):
    before = rows(Product)
    with pytest.raises(ApplicationError) as error:
        services.product_create(
            merchant=world.a.merchants[0].merchant, **{"sku": "OK-1", "name": "Ok", "price": Money(1, "USD"), **fields}
        )
    assert (error.value.code, error.value.attr) == (code, attr)
    assert rows(Product) == before


def test_a_product_is_renamed_repriced_and_deactivated(world, product):
    updated = services.product_update(product=product, name="Espresso", price=Money(300, "USD"), active=False)
    stored = Product.objects.unscoped().get(pk=product.pk)
    assert (updated.name, updated.price, updated.active) == ("Espresso", 300, False)
    assert (stored.name, stored.price, stored.active, stored.sku, stored.currency) == (
        "Espresso",
        300,
        False,
        "canary-sku-a1",
        "USD",
    )


def test_a_products_currency_never_changes(world, product):
    before = rows(Product)
    with pytest.raises(ApplicationError) as error:
        services.product_update(product=product, price=Money(300, "EUR"), name="Also renamed")
    assert (error.value.code, error.value.attr) == ("miniprograms.currency_immutable", "price.currency")
    assert rows(Product) == before


def test_a_product_cannot_be_repriced_to_nothing(world, product):
    before = rows(Product)
    with pytest.raises(ApplicationError) as error:
        services.product_update(product=product, price=Money(0, "USD"))
    assert (error.value.code, error.value.attr) == ("validation.min_value", "price")
    assert rows(Product) == before
