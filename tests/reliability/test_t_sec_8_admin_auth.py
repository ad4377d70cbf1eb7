"""T-SEC-8: signing in to the admin — lockout after repeated failures, and the second factor.

tests/accounts/test_hardening.py proves each rule once (one account locked and its pause ending, the setup
page, a code at every sign-in). This suite proves them over every staff account of the world and every page
of the admin site: after ``AXES_FAILURE_LIMIT`` failures each account is locked (the right password, and the
right code, refused) while other accounts and addresses are not; and with ``ADMIN_SECOND_FACTOR_REQUIRED`` no
admin URL answers an operator or ISV admin who has not proved a second factor, every one does once they have.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import SESSION_KEY
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.services import membership_set
from apps.core.tenancy import Role
from tests.accounts.test_hardening import _code
from tests.conftest import NIGHTLY, STAFF_PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.reliability

LOGIN = "/admin/login/?next=/admin/"
START = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)


def _sign_in(client: Client, username: str, password: str, address: str, **extra):
    return client.post(LOGIN, {"username": username, "password": password, **extra}, REMOTE_ADDR=address)


def _signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


# --- lockout -----------------------------------------------------------------------------------------


def test_every_account_is_locked_after_the_failure_limit_and_no_other(world, time_machine, figures):
    time_machine.move_to(START, tick=False)
    limit = settings.AXES_FAILURE_LIMIT
    accounts = [world.operator, *(isv.staff for isv in world.isvs)]
    accounts += [tenant.staff for isv in world.isvs for tenant in isv.merchants]
    device = TOTPDevice.objects.create(user=world.operator, name="phone", confirmed=True)
    locked = refused = retries = elsewhere = colleagues = 0
    for number, user in enumerate(accounts):
        address, other_address = f"10.0.1.{number}", f"10.0.2.{number}"
        code = {"otp_device": device.persistent_id, "otp_token": _code(device)} if user == world.operator else {}
        for _ in range(limit - 1):
            assert _sign_in(Client(), user.username, "wrong", address).status_code == 200
        locked += _sign_in(Client(), user.username, "wrong", address).status_code == 429
        for _ in range(3):  # the right password (and the right code) keeps being refused
            client = Client()
            answer = _sign_in(client, user.username, STAFF_PASSWORD, address, **code)
            retries += 1
            refused += answer.status_code == 429 and not _signed_in(client) and client.get("/admin/").status_code == 302
        # The same account from another address, and a colleague from the locked address, are let in.
        time_machine.shift(dt.timedelta(seconds=31))  # a new TOTP step: a code is accepted once
        code = {"otp_device": device.persistent_id, "otp_token": _code(device)} if code else {}
        away = Client()
        answer = _sign_in(away, user.username, STAFF_PASSWORD, other_address, **code)
        elsewhere += answer.status_code == 302 and _signed_in(away)
        colleague = accounts[(number + 1) % len(accounts)]
        if colleague != world.operator:  # the operator signs in with a code: let in from elsewhere above
            next_door = Client()
            answer = _sign_in(next_door, colleague.username, STAFF_PASSWORD, address)
            colleagues += answer.status_code == 302 and _signed_in(next_door)
    others = len(accounts) - 1

    assert (locked, refused, elsewhere, colleagues) == (len(accounts), retries, len(accounts), others)
    figures.record(
        "T-SEC-8",
        f"{len(accounts)} accounts x {limit} failures -> {locked}/{len(accounts)} locked, {refused}/{retries} "
        f"sign-ins with the right password (and code) refused; {elsewhere}/{len(accounts)} from another address "
        f"and {colleagues}/{others} colleagues from the locked address let in",
    )


# --- the second factor, over every page of the admin site ------------------------------------------------


def _patterns(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield pattern


def admin_urls(*, every_page: bool = True) -> list[str]:
    """Every page of ``admin.site`` a person can open: the site's own, each app's, and each model admin's
    (changelist, add, and the change, history, delete and custom pages of one existing row); without
    ``every_page``, of each model admin only its changelist, add and change pages."""
    urls = [reverse(f"admin:{name}") for name in ("index", "password_change", "password_change_done", "jsi18n")]
    urls.append(reverse("admin:autocomplete"))
    registry = admin.site._registry
    labels = sorted({model._meta.app_label for model in registry})
    urls += [reverse("admin:app_list", kwargs={"app_label": label}) for label in labels]
    for model, model_admin in registry.items():
        row = model._base_manager.order_by("pk").first()  # any tenant's: the operator's view of the site
        for pattern in _patterns(model_admin.get_urls()):
            if not every_page and not pattern.name.endswith(("_changelist", "_add", "_change")):
                continue
            parameters = list(pattern.pattern.regex.groupindex)
            if not parameters:
                urls.append(reverse(f"admin:{pattern.name}"))
            elif row is not None:
                urls.append(reverse(f"admin:{pattern.name}", kwargs={parameters[0]: row.pk}))
        if row is not None and model_admin.view_on_site:
            content_type = ContentType.objects.get_for_model(model)
            urls.append(reverse("admin:view_on_site", args=[content_type.pk, row.pk]))
    return sorted(set(urls))


@dataclasses.dataclass
class Walk:
    """What one session got from each admin URL."""

    answers: dict[str, int]
    locations: dict[str, str]

    @property
    def served(self) -> set[str]:
        return {url for url, status in self.answers.items() if status == 200}

    def sent_to(self, target: str) -> set[str]:
        """URLs answered with a redirect to ``target`` (the login, the second factor's setup)."""
        return {url for url, location in self.locations.items() if location.split("?")[0] == target}


def walk(client: Client, urls: list[str], *, post: bool = False) -> Walk:
    answers, locations = {}, {}
    for url in urls:
        response = client.post(url, {}) if post else client.get(url)
        answers[url] = response.status_code
        if response.status_code in (301, 302, 303):
            locations[url] = response["Location"]
    return Walk(answers, locations)


def _browser() -> Client:
    """A client that gets a server error as a 500 answer (counted), not as an exception in the test."""
    return Client(raise_request_exception=False)


def _row_counts() -> dict[str, int]:
    """Rows of every model with an admin (axes' logs aside: signing in is meant to write them)."""
    return {
        model._meta.label: model._base_manager.count()
        for model in admin.site._registry
        if model._meta.app_label != "axes"
    }


@pytest.fixture
def isv_admin(world):
    user = UserFactory(username="isv-a-admin-second-factor")
    membership_set(user=user, isv=world.a.isv, role=Role.ADMIN)
    return user


def test_no_admin_page_answers_without_a_second_factor_and_every_one_does_with_it(
    world, isv_admin, settings, time_machine, figures
):
    time_machine.move_to(START, tick=False)
    login, setup = reverse("admin:login"), reverse("second-factor-setup")
    for user in (world.operator, isv_admin):
        TOTPDevice.objects.create(user=user, name="unconfirmed, from an abandoned setup", confirmed=False)
    urls = admin_urls()
    # Every URL is tried without a second factor (a redirect costs little); the pages rendered in full, with
    # a password alone before the requirement and with a code after it, are fewer in CI.
    pages = admin_urls(every_page=NIGHTLY)

    # What each role reaches with a password alone, before a second factor is required.
    settings.ADMIN_SECOND_FACTOR_REQUIRED = False
    baseline = {}
    for user in (world.operator, isv_admin):
        client = _browser()
        assert _sign_in(client, user.username, STAFF_PASSWORD, "10.0.3.1").status_code == 302
        baseline[user.username] = walk(client, pages).served
    assert len(baseline[world.operator.username]) > len(baseline[isv_admin.username]) > 5

    settings.ADMIN_SECOND_FACTOR_REQUIRED = True
    served_unverified = requests = redirected = rows_changed = sessions = reached = expected = 0

    def walk_unverified(client: Client, to: str) -> None:
        nonlocal served_unverified, requests, redirected, rows_changed
        for post in (False, True):
            before = _row_counts()
            answers = walk(client, urls, post=post)
            after = _row_counts()
            rows_changed += sum(abs(after[label] - count) for label, count in before.items())
            requests += len(urls)
            served_unverified += len(answers.served)
            redirected += len(answers.sent_to(to))

    for user in (world.operator, isv_admin):
        expected += len(baseline[user.username])
        # Signed in with a password, no authenticator yet: every URL, read or written, sends to the setup.
        no_device = _browser()
        assert _sign_in(no_device, user.username, STAFF_PASSWORD, "10.0.3.2").status_code == 302
        walk_unverified(no_device, setup)

        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        # A password alone no longer opens a session: the form asks for the code.
        password_only = _browser()
        assert _sign_in(password_only, user.username, STAFF_PASSWORD, "10.0.3.3").status_code == 200
        sessions += _signed_in(password_only)
        # A session opened by a password alone all the same (before the authenticator was confirmed): every
        # URL sends to the login page, which asks for the code.
        unverified = _browser()
        unverified.force_login(user)
        walk_unverified(unverified, login)

        # With the code from the authenticator, every page the role reached before is there again.
        verified = _browser()
        code = {"otp_device": device.persistent_id, "otp_token": _code(device)}
        assert _sign_in(verified, user.username, STAFF_PASSWORD, "10.0.3.4", **code).status_code == 302
        reached += len(walk(verified, pages).served & baseline[user.username])
        device.delete()

    assert (served_unverified, rows_changed, sessions) == (0, 0, 0)
    assert redirected == requests, "an admin URL answered an unverified session other than by a redirect"
    assert reached == expected
    figures.record(
        "T-SEC-8",
        f"{len(urls)} admin URLs, operator and ISV admin: {served_unverified}/{expected} pages reachable without "
        f"a second factor ({redirected}/{requests} GETs and POSTs redirected to its setup or the login, "
        f"{rows_changed} rows added or deleted), {sessions} sessions from a password alone, {reached}/{expected} pages "
        "reachable with a TOTP code",
    )
