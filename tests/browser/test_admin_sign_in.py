"""The admin in a real browser: signing in, and what a merchant's staff land on."""

import pytest

from tests.browser.conftest import sign_in
from tests.conftest import STAFF_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def test_merchant_staff_sign_in_and_see_their_merchant_only(world, page):
    sign_in(page, "merchant-a1-owner", STAFF_PASSWORD)

    assert "ISV merchant platform" in page.title()
    page.goto("/admin/merchants/merchant/")
    names = page.locator("#result_list tbody tr").all_inner_texts()
    assert len(names) == 1
    assert world.a.merchants[0].merchant.name in names[0]
    others = [world.a.merchants[1].merchant.name, *(m.merchant.name for m in world.b.merchants)]
    assert not [name for name in others if name in page.content()]


def test_a_wrong_password_keeps_the_form_with_an_error(world, page):
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "merchant-a1-owner")
    page.fill("#id_password", "not it")
    page.click("input[type=submit]")
    assert page.locator(".errornote").is_visible()
    assert "/admin/login/" in page.url
