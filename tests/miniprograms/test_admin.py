"""What staff see and do with mini programs and products in the admin (cross-tenant walks: tests/test_isolation.py)."""

import re

from django.test import Client
from django.urls import reverse

from apps.core.tenancy import Role
from apps.miniprograms.models import Feature, MiniProgram, MiniProgramFeature, Product
from apps.superapps.models import SuperApp
from tests.factories import MembershipFactory, UserFactory
from tests.miniprograms.conftest import rows

SECRET = re.compile(r'id="webhook-secret"[^>]*>(whsec_[A-Za-z0-9+/=]+)<')


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _stored_secret(mini_program: MiniProgram) -> str:
    stored = MiniProgram.objects.unscoped().get(pk=mini_program.pk)
    return stored.unseal("webhook_secret_ciphertext").decode()


def _change_form(mini_program: MiniProgram, features: list[dict], **fields) -> dict:
    """A change-form post: the editable fields plus the features inline (existing rows first)."""
    data = {
        "name": mini_program.name,
        "status": mini_program.status,
        "trade_pay_mode": mini_program.trade_pay_mode,
        "webhook_url": mini_program.webhook_url,
        **fields,
        "features-TOTAL_FORMS": str(len(features)),
        "features-INITIAL_FORMS": str(sum(1 for row in features if row.get("id"))),
        "features-MIN_NUM_FORMS": "0",
        "features-MAX_NUM_FORMS": "3",
    }
    for index, row in enumerate(features):
        data.update({f"features-{index}-{key}": value for key, value in row.items()})
        data[f"features-{index}-mini_program"] = str(mini_program.pk)
    return data


def test_merchant_staff_see_only_their_mini_programs_and_products(world):
    client = _login(world.a.merchants[0].staff)
    mini_programs = client.get(reverse("admin:miniprograms_miniprogram_changelist")).content.decode()
    products = client.get(reverse("admin:miniprograms_product_changelist")).content.decode()
    assert "canary-mp-a1" in mini_programs
    assert "canary-mp-a2" not in mini_programs
    assert "canary-product-a1" in products
    assert "canary-product-a2" not in products


def test_isv_staff_create_a_mini_program_through_the_service_and_see_its_secret_once(world):
    merchant = world.a.merchants[1].merchant
    client = _login(world.a.staff)
    response = client.post(
        reverse("admin:miniprograms_miniprogram_add"),
        {
            "merchant": merchant.pk,
            "super_app": SuperApp.objects.get(code="world-wallet").pk,
            "app_id": "2021000000000077",
            "name": "From the admin",
            "trade_pay_mode": "order_str",
            "default_currency": "PHP",
            "webhook_url": "https://merchant.example/hook",
        },
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    mini_program = MiniProgram.objects.unscoped().get(app_id="2021000000000077")
    assert (mini_program.isv_id, mini_program.merchant_id) == (merchant.isv_id, merchant.pk)
    assert list(mini_program.features.values_list("feature", "enabled")) == [(Feature.PAYMENT, True)]
    secret = SECRET.search(response.content.decode()).group(1)
    assert secret == _stored_secret(mini_program)
    change_page = client.get(reverse("admin:miniprograms_miniprogram_change", args=[mini_program.pk]))
    assert secret not in change_page.content.decode()


def test_the_add_form_refuses_what_the_service_would(world):
    client = _login(world.a.staff)
    before = rows(MiniProgram)
    response = client.post(
        reverse("admin:miniprograms_miniprogram_add"),
        {
            "merchant": world.a.merchants[0].merchant.pk,
            "super_app": SuperApp.objects.get(code="world-wallet").pk,
            "app_id": "canary-app-b1",  # another ISV's appId at this super app
            "name": "Dup",
            "trade_pay_mode": "payment_url",
            "default_currency": "usd",
            "webhook_url": "https://192.168.0.10/hook",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "is not an ISO 4217 currency" in page
    assert "public host" in page
    assert rows(MiniProgram) == before


def test_staff_cannot_create_a_mini_program_for_another_isvs_merchant(world):
    client = _login(world.a.staff)
    before = rows(MiniProgram)
    client.post(
        reverse("admin:miniprograms_miniprogram_add"),
        {
            "merchant": world.b.merchants[0].merchant.pk,
            "super_app": SuperApp.objects.get(code="world-wallet").pk,
            "app_id": "2021000000000078",
            "name": "Sneaky",
            "trade_pay_mode": "payment_url",
            "default_currency": "USD",
        },
    )
    assert rows(MiniProgram) == before


def test_features_are_switched_in_the_inline_but_payment_stays_on(world, mini_program):
    client = _login(world.a.merchants[0].staff)
    payment = mini_program.features.get(feature=Feature.PAYMENT)
    data = _change_form(
        mini_program,
        [
            {"id": str(payment.pk), "feature": "payment"},  # "enabled" unticked: an attempt to switch it off
            {"id": "", "feature": "pre_authorization", "enabled": "on"},
        ],
        name="Renamed in the admin",
    )
    response = client.post(reverse("admin:miniprograms_miniprogram_change", args=[mini_program.pk]), data)
    assert response.status_code == 302, response.content.decode()
    assert dict(mini_program.features.values_list("feature", "enabled")) == {
        Feature.PAYMENT: True,
        Feature.PRE_AUTHORIZATION: True,
    }
    new_row = mini_program.features.get(feature=Feature.PRE_AUTHORIZATION)
    assert (new_row.isv_id, new_row.merchant_id) == (mini_program.isv_id, mini_program.merchant_id)
    assert MiniProgram.objects.unscoped().get(pk=mini_program.pk).name == "Renamed in the admin"


def test_the_inline_refuses_a_forged_row_of_another_mini_program(world, mini_program):
    sibling = MiniProgram.objects.unscoped().get(app_id="canary-app-a2")
    foreign = sibling.features.get(feature=Feature.PAYMENT)
    client = _login(world.a.staff)  # may edit both mini programs, but one at a time
    before = rows(MiniProgramFeature)
    data = _change_form(mini_program, [{"id": str(foreign.pk), "feature": "user_info", "enabled": ""}])
    data["features-INITIAL_FORMS"] = "1"
    response = client.post(reverse("admin:miniprograms_miniprogram_change", args=[mini_program.pk]), data)
    assert response.status_code == 200  # the form, with an error
    assert rows(MiniProgramFeature) == before


def test_the_inline_offers_no_new_payment_row(world, mini_program):
    client = _login(world.a.merchants[0].staff)
    page = client.get(reverse("admin:miniprograms_miniprogram_change", args=[mini_program.pk])).content.decode()
    new_row = re.search(r'<select name="features-1-feature".*?</select>', page, re.S).group(0)
    assert 'value="pre_authorization"' in new_row
    assert 'value="payment"' not in new_row


def test_the_super_app_app_id_and_currency_are_fixed_after_creation(world, mini_program):
    client = _login(world.operator)
    before = rows(MiniProgram)
    data = _change_form(mini_program, [], app_id="moved", default_currency="EUR", super_app="999")
    response = client.post(reverse("admin:miniprograms_miniprogram_change", args=[mini_program.pk]), data)
    assert response.status_code == 302
    after = rows(MiniProgram)
    assert [(row["app_id"], row["default_currency"], row["super_app_id"]) for row in after] == [
        (row["app_id"], row["default_currency"], row["super_app_id"]) for row in before
    ]


def test_the_rotate_action_shows_the_new_secret_once(world, mini_program):
    client = _login(world.a.merchants[0].staff)
    old = _stored_secret(mini_program)
    response = client.post(
        reverse("admin:miniprograms_miniprogram_changelist"),
        {"action": "rotate_webhook_secret", "_selected_action": [mini_program.pk]},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = SECRET.search(response.content.decode()).group(1)
    assert secret == _stored_secret(mini_program) != old


def test_viewers_read_but_do_not_add_change_or_rotate(world, mini_program):
    viewer = MembershipFactory(
        user=UserFactory(username="viewer-a1"), isv=world.a.isv, merchant=mini_program.merchant, role=Role.VIEWER
    ).user
    client = _login(viewer)
    assert client.get(reverse("admin:miniprograms_miniprogram_changelist")).status_code == 200
    assert client.get(reverse("admin:miniprograms_miniprogram_add")).status_code == 403
    assert client.get(reverse("admin:miniprograms_product_add")).status_code == 403
    before = (rows(MiniProgram), rows(MiniProgramFeature))
    client.post(
        reverse("admin:miniprograms_miniprogram_changelist"),
        {"action": "rotate_webhook_secret", "_selected_action": [mini_program.pk]},
    )
    client.post(
        reverse("admin:miniprograms_miniprogram_change", args=[mini_program.pk]),
        _change_form(mini_program, [{"id": "", "feature": "user_info", "enabled": "on"}], name="Viewer was here"),
    )
    assert (rows(MiniProgram), rows(MiniProgramFeature)) == before


def test_merchant_staff_add_a_product_and_reprice_it_but_never_change_its_currency(world):
    tenant = world.a.merchants[0]
    client = _login(tenant.staff)
    response = client.post(
        reverse("admin:miniprograms_product_add"),
        {
            "merchant": tenant.merchant.pk,
            "sku": "MUG-1",
            "name": "Mug",
            "price": "1500",
            "currency": "JPY",
            "active": "on",
        },
    )
    assert response.status_code == 302
    product = Product.objects.unscoped().get(sku="MUG-1")
    assert (product.isv_id, product.merchant_id, product.price, product.currency) == (
        tenant.merchant.isv_id,
        tenant.merchant.pk,
        1500,
        "JPY",
    )
    client.post(
        reverse("admin:miniprograms_product_change", args=[product.pk]),
        {"name": "Big mug", "price": "1800", "currency": "USD", "sku": "MUG-2"},
    )
    product.refresh_from_db()
    assert (product.sku, product.name, product.price, product.currency, product.active) == (
        "MUG-1",
        "Big mug",
        1800,
        "JPY",
        False,
    )
    assert "1800 JPY" in client.get(reverse("admin:miniprograms_product_changelist")).content.decode()


def test_the_product_form_refuses_a_taken_sku_and_a_zero_price(world):
    tenant = world.a.merchants[0]
    client = _login(tenant.staff)
    before = rows(Product)
    response = client.post(
        reverse("admin:miniprograms_product_add"),
        {"merchant": tenant.merchant.pk, "sku": "canary-sku-a1", "name": "Dup", "price": "0", "currency": "USD"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "already exists" in page
    assert "greater than or equal to 1" in page
    assert rows(Product) == before
