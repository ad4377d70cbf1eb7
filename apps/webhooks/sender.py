"""One signed POST to a merchant's webhook URL, behind a guard against server-side request forgery.

Signatures follow Standard Webhooks (``Webhook-Id``, ``Webhook-Timestamp``, ``Webhook-Signature: v1,…``).

The guard runs at send time, whatever was checked when the URL was saved: the URL passes
``validate_webhook_url`` again, its host is resolved here once, every address it resolves to must be public
(unless ``private_webhook_hosts_allowed()``), and the connection goes to an address so checked — never to a
second resolution, so a name re-pointed in between (DNS rebinding) reaches nothing inside. TLS still
verifies the certificate against the host name, sent as SNI, and no proxy from the environment is used.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import ipaddress
import socket
import time

import httpx
from django.core.exceptions import ValidationError

from apps.miniprograms.validators import private_webhook_hosts_allowed, validate_webhook_url

TIMEOUT = httpx.Timeout(connect=5.0, read=10.0, write=10.0, pool=5.0)
RESPONSE_READ_LIMIT = 4096  # bytes of the answer read at most; the rest is never downloaded
EXCERPT_LENGTH = 500
# A name with many addresses is tried on the first few only: each costs up to the connect timeout.
ADDRESSES_TRIED = 2

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 that ``is_global`` lets through in Python 3.11 but that is nobody's public server: NAT64 (RFC 6052, 8215),
# 6to4 (RFC 3056), Teredo (RFC 4380), site-local (RFC 3879), documentation (RFC 9637).
_IPV6_NOT_PUBLIC = tuple(
    ipaddress.IPv6Network(network)
    for network in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "fec0::/10", "3fff::/20")
)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one attempt ended. ``permanent``: no later attempt to this URL can do better."""

    duration_ms: int
    status_code: int | None = None
    error: str = ""
    response_excerpt: str = ""
    permanent: bool = False

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Refused(Exception):
    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret: the bytes its base64 part encodes (secrets issued in the
    url-safe alphabet earlier decode to their same key)."""
    encoded = secret.removeprefix("whsec_").replace("-", "+").replace("_", "/")
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4))


def signature(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, the ``Webhook-Signature`` header."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


def post(url: str, *, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST ``body`` to ``url`` once: no redirect followed, explicit timeouts, the answer read up to
    ``RESPONSE_READ_LIMIT``. A refused URL is an outcome with an error, never a request."""
    started = time.monotonic()
    try:
        target, addresses = _checked_target(url)
    except Refused as refused:
        return Outcome(duration_ms=_ms_since(started), error=f"refused: {refused.reason}", permanent=refused.permanent)
    # Connections go to the addresses checked; the Host header and TLS (SNI, certificate) name the host.
    headers = {**headers, "Host": target.netloc.decode("ascii"), "Accept-Encoding": "identity"}
    tried = addresses[:ADDRESSES_TRIED]
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as http:
            for address in tried[:-1]:
                try:
                    return _exchange(http, target, address, body=body, headers=headers, started=started)
                except (httpx.ConnectError, httpx.ConnectTimeout):
                    continue  # nothing was sent; the next address may answer
            return _exchange(http, target, tried[-1], body=body, headers=headers, started=started)
    except httpx.HTTPError as error:
        return Outcome(duration_ms=_ms_since(started), error=f"{type(error).__name__}: {error}"[:500])


def _exchange(
    http: httpx.Client, target: httpx.URL, address: Address, *, body: bytes, headers: dict[str, str], started: float
) -> Outcome:
    pinned = target.copy_with(host=str(address))
    extensions = {"sni_hostname": target.raw_host.decode("ascii")}
    with http.stream("POST", pinned, content=body, headers=headers, extensions=extensions) as response:
        excerpt = _read_excerpt(response)
    return Outcome(duration_ms=_ms_since(started), status_code=response.status_code, response_excerpt=excerpt)


def _checked_target(url: str) -> tuple[httpx.URL, list[Address]]:
    try:
        validate_webhook_url(url)
        target = httpx.URL(url)
    except (ValidationError, httpx.InvalidURL) as error:
        reason = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        raise Refused(reason, permanent=True) from None
    host = target.raw_host.decode("ascii")
    port = target.port or (443 if target.scheme == "https" else 80)
    return target, _resolve(host, port)


def _resolve(host: str, port: int) -> list[Address]:
    """The addresses ``host`` resolves to now, in the resolver's order; refused unless every one is public."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Refused(f"{host} does not resolve", permanent=False) from None
    addresses: list[Address] = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])  # without an IPv6 zone index
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Refused(f"{host} does not resolve", permanent=False)
    if not private_webhook_hosts_allowed() and not all(map(_public, addresses)):
        raise Refused(f"{host} resolves to a loopback, private or otherwise non-public address", permanent=False)
    return addresses


def _public(address: Address) -> bool:
    """An ordinary public unicast address. Python's ``is_global`` alone also passes IPv6 ranges that lead back
    into private IPv4 networks (NAT64, 6to4, Teredo carry an IPv4 address inside), deprecated site-local and
    reserved space, and multicast."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _public(address.ipv4_mapped)
        if any(address in network for network in _IPV6_NOT_PUBLIC):
            return False
    return address.is_global and not address.is_multicast and not address.is_reserved


def _read_excerpt(response: httpx.Response) -> str:
    received = b""
    for chunk in response.iter_raw():
        received += chunk
        if len(received) >= RESPONSE_READ_LIMIT:
            break
    return received[:RESPONSE_READ_LIMIT].decode("utf-8", errors="replace")[:EXCERPT_LENGTH]


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
