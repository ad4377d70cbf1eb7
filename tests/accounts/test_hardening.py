"""Signing in to the admin: a pause after repeated failures, and a second factor for operators and ISV admins."""

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.services import membership_set
from apps.core.tenancy import Role
from tests.conftest import STAFF_PASSWORD
from tests.factories import UserFactory

LOGIN = "/admin/login/?next=/admin/"


def _sign_in(client: Client, username: str, password: str = STAFF_PASSWORD, **extra):
    return client.post(LOGIN, {"username": username, "password": password, **extra}, REMOTE_ADDR="10.0.0.7")


def _code(device: TOTPDevice, *, offset: int = 0) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits) + offset:06d}"[-6:]


# --- lockout -----------------------------------------------------------------------------------------


def test_five_failures_pause_signing_in_even_with_the_right_password_then_the_pause_ends(world, time_machine):
    time_machine.move_to(dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC), tick=False)
    client = Client()
    for _ in range(4):
        assert _sign_in(client, "merchant-a1-owner", "wrong").status_code == 200  # the form again, with an error
    assert _sign_in(client, "merchant-a1-owner", "wrong").status_code == 429  # the fifth failure pauses

    locked = _sign_in(client, "merchant-a1-owner")
    assert locked.status_code == 429
    assert b"Signing in is paused" in locked.content
    assert Client().get("/admin/").status_code == 302

    time_machine.move_to(dt.datetime(2026, 11, 22, 9, 16, tzinfo=dt.UTC), tick=False)
    assert _sign_in(client, "merchant-a1-owner").status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_pause_is_per_account_and_address(world):
    for _ in range(5):
        _sign_in(Client(), "merchant-a1-owner", "wrong")

    assert _sign_in(Client(), "merchant-a2-owner").status_code == 302  # another account from there
    from_elsewhere = Client().post(
        LOGIN, {"username": "merchant-a1-owner", "password": STAFF_PASSWORD}, REMOTE_ADDR="10.0.0.8"
    )
    assert from_elsewhere.status_code == 302  # a stranger elsewhere cannot lock a colleague out


def test_a_forwarded_address_is_not_believed_without_a_proxy(world):
    for number in range(5):
        Client().post(
            LOGIN,
            {"username": "merchant-a1-owner", "password": "wrong"},
            REMOTE_ADDR="10.0.0.7",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{number}",
        )
    assert _sign_in(Client(), "merchant-a1-owner").status_code == 429


# --- second factor -------------------------------------------------------------------------------------


@pytest.fixture
def second_factor_required(settings):
    settings.ADMIN_SECOND_FACTOR_REQUIRED = True


def _isv_admin(world, role=Role.ADMIN):
    user = UserFactory(username=f"isv-a-{role}-signing-in")
    user.set_password(STAFF_PASSWORD)
    user.save()
    membership_set(user=user, isv=world.a.isv, role=role)
    return user


@pytest.mark.usefixtures("second_factor_required")
@pytest.mark.parametrize("who", ["operator", "isv_admin"])
def test_operators_and_isv_admins_set_up_an_authenticator_before_anything_else(world, who, time_machine):
    time_machine.move_to(dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC), tick=False)
    user = world.operator if who == "operator" else _isv_admin(world)
    client = Client()
    assert _sign_in(client, user.username).status_code == 302

    sent = client.get("/admin/payments/preauthorization/")
    assert sent.status_code == 302
    assert sent.url == reverse("second-factor-setup")
    page = client.get(sent.url)
    assert page.status_code == 200
    assert b"<svg" in page.content
    assert b"canary-" not in client.get("/admin/merchants/merchant/", follow=True).content

    device = TOTPDevice.objects.get(user=user, confirmed=False)
    wrong = client.post(sent.url, {"code": _code(device, offset=1)})
    assert wrong.status_code == 200
    assert b"not the app&#x27;s current one" in wrong.content
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()

    time_machine.move_to(dt.datetime(2026, 11, 22, 9, 1, tzinfo=dt.UTC), tick=False)  # after the throttle's pause
    assert client.post(sent.url, {"code": _code(device)}).status_code == 302
    assert client.get("/admin/merchants/merchant/").status_code == 200


@pytest.mark.usefixtures("second_factor_required")
def test_with_an_authenticator_the_code_is_asked_at_every_sign_in(world, time_machine):
    time_machine.move_to(dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC), tick=False)
    user = _isv_admin(world)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)

    without = Client()
    assert _sign_in(without, user.username).status_code == 200  # the form asks for the code
    assert without.get("/admin/").status_code == 302

    wrong = Client()
    assert _sign_in(wrong, user.username, otp_device=device.persistent_id, otp_token="000000").status_code == 200

    time_machine.move_to(dt.datetime(2026, 11, 22, 9, 1, tzinfo=dt.UTC), tick=False)  # after the throttle's pause
    right = Client()
    signed = _sign_in(right, user.username, otp_device=device.persistent_id, otp_token=_code(device))
    assert signed.status_code == 302
    assert right.get("/admin/merchants/merchant/").status_code == 200


@pytest.mark.usefixtures("second_factor_required")
@pytest.mark.parametrize("who", ["merchant_owner", "isv_viewer"])
def test_other_roles_sign_in_with_a_password_alone(world, who):
    username = "merchant-a1-owner" if who == "merchant_owner" else _isv_admin(world, Role.VIEWER).username
    client = Client()
    assert _sign_in(client, username).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_merchant_owner_may_add_an_authenticator_and_is_then_asked_for_it(world):
    client = Client()
    _sign_in(client, "merchant-a1-owner")
    setup = reverse("second-factor-setup")
    assert client.get(setup).status_code == 200
    device = TOTPDevice.objects.get(user__username="merchant-a1-owner", confirmed=False)
    assert client.post(setup, {"code": _code(device)}).status_code == 302

    again = Client()
    assert _sign_in(again, "merchant-a1-owner").status_code == 200  # now the code is asked
    assert again.get("/admin/").status_code == 302


def test_an_admin_session_ends_after_its_age(world, settings, time_machine):
    time_machine.move_to(dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC), tick=False)
    client = Client()
    _sign_in(client, "merchant-a1-owner")
    assert client.get("/admin/").status_code == 200
    time_machine.move_to(
        dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=settings.SESSION_COOKIE_AGE + 1)
    )
    assert client.get("/admin/").status_code == 302
