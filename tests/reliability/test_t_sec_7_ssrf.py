"""T-SEC-7: merchant webhook URLs cannot make the platform call into its own network.

Every payload is refused where a webhook URL is saved (the API's create and update, the admin's form) and again
where a webhook is sent (a delivery whose URL is set directly, as if saved under other rules). Names are not
resolved at save (an answer can change afterwards); what they resolve to is checked at send, once, and the
connection goes to the address checked, so DNS rebinding and redirects reach nothing either. A loopback canary
counts every connection made to it, and every other connection attempt is recorded and refused by the test's
network (``tests/reliability/canary.py``), so a guard that fails shows up as a hit, never as real traffic.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.selectors import principal_for_user
from apps.miniprograms.models import MiniProgram
from apps.miniprograms.services import mini_program_update
from apps.superapps.models import TradePayMode
from apps.webhooks.models import DeliveryStatus, WebhookDelivery
from apps.webhooks.services import webhook_deliver
from tests.reliability.canary import Canary, Network
from tests.webhooks.conftest import Hooked

pytestmark = pytest.mark.reliability

PUBLIC_NAME = "hooks.merchant.example"
PUBLIC_ADDRESS = "93.184.215.14"  # never reached: the test's network sends it to a loopback stand-in
NON_PUBLIC = "resolves to a loopback, private or otherwise non-public address"  # the sender's refusal

# {port} is the canary's: wherever a payload can name a port, a guard that let it through would hit the canary.
URL_PAYLOADS = [
    # loopback, and IPv4 spelled in the legacy forms that resolvers still accept
    "https://127.0.0.1:{port}/hooks",
    "https://127.0.0.2:{port}/hooks",
    "https://127.1:{port}/hooks",
    "https://127.0.1:{port}/hooks",
    "https://2130706433:{port}/hooks",
    "https://0x7f000001:{port}/hooks",
    "https://0x7f.1:{port}/hooks",
    "https://0x7f.0x0.0x0.0x1:{port}/hooks",
    "https://0177.0.0.1:{port}/hooks",
    "https://017700000001:{port}/hooks",
    "https://127.000.000.001:{port}/hooks",
    "https://127.0.0.1.:{port}/hooks",
    "https://0:{port}/hooks",
    "https://0.0.0.0:{port}/hooks",
    "https://localhost:{port}/hooks",
    "https://LOCALHOST:{port}/hooks",
    "https://localhost.:{port}/hooks",
    "https://api.localhost:{port}/hooks",
    # IPv6 loopback, unspecified, and IPv6 forms that carry an IPv4 address
    "https://[::1]:{port}/hooks",
    "https://[0:0:0:0:0:0:0:1]:{port}/hooks",
    "https://[::]:{port}/hooks",
    "https://[::ffff:127.0.0.1]:{port}/hooks",
    "https://[::ffff:7f00:1]:{port}/hooks",
    "https://[::127.0.0.1]:{port}/hooks",
    "https://[::ffff:0:127.0.0.1]:{port}/hooks",
    "https://[64:ff9b::127.0.0.1]:{port}/hooks",
    "https://[64:ff9b::10.0.0.1]/hooks",
    "https://[2002:7f00:1::]:{port}/hooks",
    "https://[::1%25lo]:{port}/hooks",
    # IPv6 link-local, unique-local, site-local, multicast, documentation, discard, Teredo
    "https://[fe80::1]/hooks",
    "https://[fe80::1%25eth0]/hooks",
    "https://[fc00::1]/hooks",
    "https://[fd00:ec2::254]/latest/meta-data/",
    "https://[fec0::1]/hooks",
    "https://[ff02::1]/hooks",
    "https://[2001:db8::1]/hooks",
    "https://[100::1]/hooks",
    "https://[2001::1]/hooks",
    # private IPv4
    "https://10.0.0.1/hooks",
    "https://10.255.255.255/hooks",
    "https://172.16.0.1/hooks",
    "https://172.31.255.255/hooks",
    "https://192.168.0.1/hooks",
    "https://192.168.1.1:8443/hooks",
    # link-local and cloud metadata, also as hex, decimal and octal
    "https://169.254.169.254/latest/meta-data/",
    "https://169.254.170.2/v2/credentials",
    "https://0xa9fea9fe/latest/meta-data/",
    "https://2852039166/latest/meta-data/",
    "https://0251.0376.0251.0376/latest/meta-data/",
    # carrier-grade NAT, multicast, reserved, broadcast, special-purpose
    "https://100.64.0.1/hooks",
    "https://100.127.255.254/hooks",
    "https://224.0.0.1/hooks",
    "https://239.255.255.250/hooks",
    "https://240.0.0.1/hooks",
    "https://255.255.255.255/hooks",
    "https://192.0.0.1/hooks",
    "https://192.0.2.1/hooks",
    "https://198.18.0.1/hooks",
    "https://0.1.2.3/hooks",
    # schemes other than https (production)
    f"http://{PUBLIC_NAME}/hooks",
    f"HTTP://{PUBLIC_NAME}/hooks",
    f"ftp://{PUBLIC_NAME}/hooks",
    f"ws://{PUBLIC_NAME}/hooks",
    "gopher://127.0.0.1:{port}/_",
    "dict://127.0.0.1:{port}/",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "data:text/plain,hello",
    "//127.0.0.1:{port}/hooks",
    # credentials and other tricks that make a parser see one host and a client another
    "https://good.example@127.0.0.1:{port}/hooks",
    "https://good.example:secret@127.0.0.1:{port}/hooks",
    "https://127.0.0.1:{port}\\@good.example/hooks",
    "https://good.example%40127.0.0.1:{port}/hooks",
    "https://127.0.0.1:{port}#@good.example/hooks",
    "https://127.0.0.1:{port}?@good.example/hooks",
    "https://0x7f.1:{port}#.good.example/hooks",
    "https://127\u30020\u30020\u30021:{port}/hooks",  # ideographic full stops, which IDNA maps to dots
    "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{port}/hooks",  # full-width digits
    "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:{port}/hooks",  # full-width "localhost"
    "https://%31%32%37.0.0.1:{port}/hooks",
]

# What a public-looking name may resolve to at send time: refused before any connection.
DNS_ANSWERS = [
    ["127.0.0.1"],
    ["127.0.0.53"],
    ["0.0.0.0"],  # noqa: S104 - an answer, not a bind address
    ["10.0.0.1"],
    ["172.16.0.1"],
    ["192.168.0.1"],
    ["169.254.169.254"],
    ["100.64.0.1"],
    ["224.0.0.1"],
    ["255.255.255.255"],
    ["::1"],
    ["::"],
    ["::ffff:127.0.0.1"],
    ["::127.0.0.1"],
    ["::ffff:0:a9fe:a9fe"],
    ["64:ff9b::a9fe:a9fe"],
    ["64:ff9b:1::a00:1"],
    ["2002:a9fe:a9fe::1"],
    ["2001:0:4136:e378:8000:63bf:3fff:fdd2"],
    ["fe80::1"],
    ["fc00::1"],
    ["fec0::1"],
    ["ff02::1"],
    ["3fff::1"],
    [PUBLIC_ADDRESS, "127.0.0.1"],  # one private address among public ones is enough
    ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::1"],
]


@pytest.fixture
def canary():
    served = Canary()
    yield served
    served.close()


@pytest.fixture
def network(monkeypatch) -> Network:
    return Network().install(monkeypatch)


@pytest.fixture
def production(settings):
    """The settings of ``ISV_ENV=production``, as far as webhooks go."""
    settings.PRODUCTION, settings.DEBUG, settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True, False, False


@pytest.fixture
def public_only_development(settings):
    """Development (plain http allowed) with private hosts refused, for the scenarios that need a server to
    answer over plain HTTP."""
    settings.PRODUCTION, settings.DEBUG, settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False, False, False


@pytest.fixture
def hooked(world) -> Hooked:
    """Merchant a1's mini program with a public webhook URL (each test points its deliveries elsewhere)."""
    mini_program = MiniProgram.objects.unscoped().get(app_id="canary-app-a1")
    mini_program = mini_program_update(mini_program=mini_program, webhook_url=f"https://{PUBLIC_NAME}/hooks")
    return Hooked(mini_program=mini_program, secret="")


def send(hooked: Hooked, url: str):
    """Record an event, point its delivery at ``url`` and make the attempt that is due."""
    delivery = hooked.delivery(hooked.record())
    WebhookDelivery.objects.unscoped().filter(pk=delivery.pk).update(url=url)
    return webhook_deliver(delivery_id=delivery.pk)


def _refused_by_api(client: APIClient, mini_program: MiniProgram, url: str) -> bool:
    """Both ways the API sets a webhook URL refuse ``url`` as a 400 on ``webhook_url``, and nothing changes."""
    updated = client.patch(f"/api/v1/mini-programs/{mini_program.public_id}", {"webhook_url": url}, format="json")
    created = client.post(
        "/api/v1/mini-programs",
        {
            "super_app": mini_program.super_app.code,
            "app_id": "ssrf-probe",
            "name": "Probe",
            "trade_pay_mode": TradePayMode.PAYMENT_URL,
            "default_currency": "USD",
            "webhook_url": url,
        },
        format="json",
    )
    unchanged = MiniProgram.objects.unscoped().get(pk=mini_program.pk).webhook_url == mini_program.webhook_url
    not_created = not MiniProgram.objects.unscoped().filter(app_id="ssrf-probe").exists()
    return (
        unchanged
        and not_created
        and all(
            response.status_code == 400 and response.json()["error"]["attr"] == "webhook_url"
            for response in (updated, created)
        )
    )


def _refused_by_admin(form_class, mini_program: MiniProgram, url: str) -> bool:
    data = {field: getattr(mini_program, field) for field in ("name", "status", "trade_pay_mode")}
    form = form_class(
        data={**data, "webhook_url": url}, instance=MiniProgram.objects.unscoped().get(pk=mini_program.pk)
    )
    return not form.is_valid() and set(form.errors) == {"webhook_url"}


def test_ssrf_payloads_are_refused_at_save_and_at_send(world, hooked, production, canary, network, figures):
    mini_program = hooked.mini_program
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {world.a.key}", HTTP_MERCHANT_ID=mini_program.merchant.public_id)
    request = RequestFactory().get("/admin/")
    request.user = world.a.staff
    request.principal = principal_for_user(world.a.staff)
    form_class = admin.site._registry[MiniProgram].get_form(request, mini_program, change=True)
    urls = [payload.replace("{port}", str(canary.port)) for payload in URL_PAYLOADS]
    # The public name resolves (to an address the test's network refuses), so a scheme let through would connect.
    network.dns[PUBLIC_NAME] = [[PUBLIC_ADDRESS]]

    refused_at_save = [url for url in urls if _refused_by_api(client, mini_program, url)]
    refused_in_admin = [url for url in urls if _refused_by_admin(form_class, mini_program, url)]
    attempts = {url: send(hooked, url) for url in urls}
    refused_at_send = [url for url, attempt in attempts.items() if attempt.error.startswith("refused: ")]

    assert sorted(set(urls) - set(refused_at_save)) == []
    assert sorted(set(urls) - set(refused_in_admin)) == []
    assert sorted(set(urls) - set(refused_at_send)) == []
    assert all(attempt.status_code is None for attempt in attempts.values())
    assert (canary.connections, network.connected, network.looked_up) == (0, [], [])

    # Public-looking names pass at save; what they resolve to is refused at send, before any connection.
    names = {f"n{index}.{PUBLIC_NAME}": answer for index, answer in enumerate(DNS_ANSWERS)}
    network.dns.update({name: [answer] for name, answer in names.items()})
    assert not any(_refused_by_api(client, mini_program, f"https://{name}:{canary.port}/hooks") for name in names)
    dns_attempts = {name: send(hooked, f"https://{name}:{canary.port}/hooks") for name in names}
    dns_let_through = [
        names[name] for name, attempt in dns_attempts.items() if "resolves to a loopback" not in attempt.error
    ]
    dns_refused = len(names) - len(dns_let_through)

    assert dns_let_through == []
    assert (canary.connections, network.connected, network.escapes) == (0, [], [])
    figures.record(
        "T-SEC-7",
        f"{len(urls)} URL payloads: {len(refused_at_save)} refused at save by the API (create and update), "
        f"{len(refused_in_admin)} by the admin form, {len(refused_at_send)} at send; "
        f"{len(names)} public-looking names resolving to non-public addresses: {dns_refused} refused "
        f"at send; {canary.connections} canary hits, {len(network.connected)} connections attempted",
    )


def test_dns_rebinding_and_redirects_reach_nothing(world, hooked, public_only_development, canary, network, figures):
    """The name is resolved once per attempt and the connection pinned to that answer; a redirect is an answer,
    never followed. The merchant's "public" server is a stand-in on loopback that the test's network reaches
    for ``PUBLIC_ADDRESS``."""
    merchant_server = Canary(status=500)
    network.stand_ins[PUBLIC_ADDRESS] = merchant_server.port
    try:
        # Rebinding within an attempt: checked public, then 127.0.0.1 for any second look-up.
        network.dns["rebind.merchant.example"] = [[PUBLIC_ADDRESS], ["127.0.0.1"]]
        url = f"http://rebind.merchant.example:{canary.port}/hooks"
        first = send(hooked, url)
        assert (first.status_code, network.looked_up) == (500, ["rebind.merchant.example"])
        # Rebinding between attempts: the retry resolves again and is checked again.
        delivery = WebhookDelivery.objects.unscoped().get(pk=first.delivery_id)
        WebhookDelivery.objects.unscoped().filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        retry = webhook_deliver(delivery_id=delivery.pk)
        assert (
            retry.error
            == "refused: rebind.merchant.example resolves to a loopback, private or otherwise non-public address"
        )
        rebinding_contained = (first.status_code, retry.status_code) == (500, None)

        # Redirects from the public server to the canary, by address and by a name that now points there.
        network.dns["moved.merchant.example"] = [["127.0.0.1"]]
        locations = [
            f"http://127.0.0.1:{canary.port}/latest/meta-data/",
            f"http://localhost:{canary.port}/",
            f"http://[::ffff:127.0.0.1]:{canary.port}/",
            f"http://moved.merchant.example:{canary.port}/",
        ]
        network.dns["redirecting.merchant.example"] = [[PUBLIC_ADDRESS]]
        redirects = []
        for status in (301, 302, 303, 307, 308):
            for location in locations:
                merchant_server.status, merchant_server.headers = status, {"Location": location}
                attempt = send(hooked, f"http://redirecting.merchant.example:{canary.port}/hooks")
                delivery = WebhookDelivery.objects.unscoped().get(pk=attempt.delivery_id)
                assert (attempt.status_code, delivery.status) == (status, DeliveryStatus.PENDING)  # retried later
                redirects.append(attempt)
    finally:
        merchant_server.close()

    # The stand-in got every attempt that was let through (so the pinning was exercised), the canary none.
    assert len(merchant_server.hits) == 1 + len(redirects)
    assert {hit.headers["host"] for hit in merchant_server.hits} == {
        f"rebind.merchant.example:{canary.port}",
        f"redirecting.merchant.example:{canary.port}",
    }
    assert (canary.connections, network.escapes) == (0, [])
    assert rebinding_contained
    figures.record(
        "T-SEC-7",
        f"DNS rebinding within and between attempts: 1 look-up per attempt, the second attempt refused; "
        f"{len(redirects)} redirects (301/302/303/307/308 to loopback) not followed; "
        f"{canary.connections} canary hits",
    )


def test_the_demo_merchant_webhook_on_loopback_works_in_development_only(world, hooked, settings, canary, network):
    """How ``make run`` sends the demo merchants' webhooks to ``http://127.0.0.1:…/demo/merchant-webhooks/…``:
    private hosts are allowed outside production (``WEBHOOK_ALLOW_PRIVATE_HOSTS`` defaults to on there and
    off with ``ISV_ENV=production``). It is also the positive control of this file's canary."""
    mini_program = hooked.mini_program
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {world.a.key}", HTTP_MERCHANT_ID=mini_program.merchant.public_id)
    demo_path = reverse("demo:merchant-webhook", args=[mini_program.app_id])
    demo_url = f"http://127.0.0.1:{canary.port}{demo_path}"

    settings.PRODUCTION, settings.DEBUG, settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False, False, True
    saved = client.patch(f"/api/v1/mini-programs/{mini_program.public_id}", {"webhook_url": demo_url}, format="json")
    assert (saved.status_code, saved.json()["webhook_url"]) == (200, demo_url)
    assert send(hooked, demo_url).status_code == 204
    assert [hit.path for hit in canary.hits] == [demo_path]

    # In production the same URL is refused where it is saved, and where a delivery still holds it.
    public = mini_program_update(mini_program=mini_program, webhook_url=f"https://{PUBLIC_NAME}/hooks")
    settings.PRODUCTION, settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True, False
    assert _refused_by_api(client, public, demo_url)
    assert send(hooked, demo_url).error.startswith("refused: ")
    assert canary.connections == 1
