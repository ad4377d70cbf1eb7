"""The guard at send time: what the platform refuses to call, and that it connects to the address it checked."""

import datetime
import ssl

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.utils import timezone

from apps.webhooks.models import DeliveryStatus, WebhookDelivery
from apps.webhooks.services import webhook_deliver
from tests.webhooks.conftest import Endpoint

NAME = "hooks.merchant.example"


def send_to(hooked, url: str):
    """Record an event, point its delivery at ``url`` (as if the URL had been saved under other rules) and
    make the first attempt."""
    delivery = hooked.delivery(hooked.record())
    WebhookDelivery.objects.unscoped().filter(pk=delivery.pk).update(url=url)
    attempt = webhook_deliver(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return attempt, delivery


@pytest.fixture
def public_only(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    settings.DEBUG = False


def test_the_loopback_endpoint_is_reached_while_private_hosts_are_allowed(hooked, endpoint):
    """The positive control: the refusals below are the guard's doing, not an endpoint that was never there."""
    attempt, _ = send_to(hooked, endpoint.url())
    assert attempt.status_code == 200
    assert len(endpoint.received) == 1


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f.0.0.1",
        "0.0.0.0",  # noqa: S104 - a target here, not a bind address
        "[::ffff:127.0.0.1]",
        "[::1]",
        "localhost",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "224.0.0.1",
        "[fe80::1]",
        "[fc00::1]",
    ],
)
def test_a_url_naming_a_non_public_host_is_refused_at_send_time_and_never_called(
    hooked, endpoint, public_only, resolving, host
):
    looked_up = resolving({})
    attempt, delivery = send_to(hooked, f"http://{host}:{endpoint.port}/hooks")
    assert attempt.error.startswith("refused: ")
    assert (attempt.status_code, attempt.response_excerpt) == (None, "")
    # No later rule change can make this URL acceptable: the delivery gives up at once.
    assert (delivery.status, delivery.attempt_count) == (DeliveryStatus.FAILED, 1)
    assert endpoint.received == []
    assert looked_up == []


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["93.184.215.14", "127.0.0.1"],  # one private address among public ones is enough to refuse
        ["::ffff:127.0.0.1"],
        ["::1"],
        ["169.254.169.254"],
    ],
)
def test_a_public_looking_name_that_resolves_to_a_private_address_is_refused_and_retried_later(
    hooked, endpoint, public_only, resolving, addresses
):
    looked_up = resolving({NAME: [addresses]})
    attempt, delivery = send_to(hooked, f"http://{NAME}:{endpoint.port}/hooks")
    assert attempt.error == f"refused: {NAME} resolves to a loopback, private or otherwise non-public address"
    assert attempt.status_code is None
    assert (delivery.status, delivery.attempt_count) == (DeliveryStatus.PENDING, 1)  # its DNS may change
    assert delivery.next_attempt_at > timezone.now()
    assert endpoint.received == []
    assert looked_up == [NAME]


def test_a_name_that_does_not_resolve_is_a_failed_attempt(hooked, endpoint, public_only, resolving):
    resolving({NAME: [[]]})
    attempt, delivery = send_to(hooked, f"https://{NAME}/hooks")
    assert attempt.error == f"refused: {NAME} does not resolve"
    assert delivery.status == DeliveryStatus.PENDING


def test_the_connection_goes_to_the_address_checked_not_to_a_second_look_up(hooked, endpoint, resolving):
    """DNS rebinding: the name is resolved once; a different answer afterwards is never used."""
    looked_up = resolving({NAME: ["127.0.0.1", "127.0.0.2"]})
    attempt, delivery = send_to(hooked, f"http://{NAME}:{endpoint.port}/hooks")
    assert attempt.status_code == 200
    assert looked_up == [NAME]
    [request] = endpoint.received
    assert request.headers["host"] == f"{NAME}:{endpoint.port}"
    assert delivery.status == DeliveryStatus.DELIVERED


def test_a_refused_connection_on_the_first_address_tries_the_next(hooked, endpoint, resolving):
    resolving({NAME: [["127.0.0.2", "127.0.0.1"]]})  # nothing listens on 127.0.0.2
    attempt, _ = send_to(hooked, f"http://{NAME}:{endpoint.port}/hooks")
    assert attempt.status_code == 200
    assert len(endpoint.received) == 1


def test_a_connection_refused_on_every_address_is_a_failed_attempt(hooked, endpoint, resolving):
    resolving({NAME: [["127.0.0.2", "127.0.0.3"]]})
    attempt, delivery = send_to(hooked, f"http://{NAME}:{endpoint.port}/hooks")
    assert attempt.error.startswith("ConnectError")
    assert delivery.status == DeliveryStatus.PENDING


# --- TLS to the pinned address still checks the certificate against the host name -----------------------


def _certificate(subject: str, issuer_key, issuer_name, key, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def tls_endpoint(tmp_path, monkeypatch):
    """An HTTPS endpoint on loopback whose certificate names ``NAME``, issued by a CA the client trusts here;
    it records the server name each handshake asked for (SNI)."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Test webhook CA", ca_key, None, ca_key, ca=True)
    leaf = _certificate(NAME, ca_key, ca.subject, key, ca=False)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    monkeypatch.setattr(certifi, "where", lambda: str(tmp_path / "ca.pem"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    server_names = []
    context.sni_callback = lambda _socket, server_name, _context: server_names.append(server_name)
    served = Endpoint(ssl_context=context)
    served.server_names = server_names
    yield served
    served.close()


def test_https_to_the_checked_address_sends_the_host_name_and_verifies_the_certificate_for_it(
    hooked, tls_endpoint, resolving
):
    resolving({NAME: ["127.0.0.1"]})
    attempt, delivery = send_to(hooked, f"https://{NAME}:{tls_endpoint.port}/hooks")
    assert (attempt.status_code, attempt.error) == (200, "")
    assert tls_endpoint.server_names == [NAME]
    assert delivery.status == DeliveryStatus.DELIVERED


def test_https_to_a_host_the_certificate_does_not_name_fails(hooked, tls_endpoint, resolving):
    resolving({"other.merchant.example": ["127.0.0.1"]})
    attempt, delivery = send_to(hooked, f"https://other.merchant.example:{tls_endpoint.port}/hooks")
    assert attempt.status_code is None
    assert "CERTIFICATE_VERIFY_FAILED" in attempt.error
    assert tls_endpoint.received == []
    assert delivery.status == DeliveryStatus.PENDING
