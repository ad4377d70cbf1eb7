"""How a settlement file reaches us. HTTP (the wallet's signed GET) for now; SFTP slots in beside it.

A transport writes one client's file of one day into a binary file object, or raises ``FileUnavailable``.
"""

from __future__ import annotations

import datetime as dt
from typing import IO, Protocol

from apps.merchants.models import WalletCredential
from apps.merchants.selectors import wallet_client_for
from apps.superapps.client.errors import WalletBusinessFailure, WalletUnknownOutcome


class FileUnavailable(Exception):
    """The file could not be had (not there yet, refused, unreadable answer); worth trying again later."""


class SettlementTransport(Protocol):
    def download(self, *, credential: WalletCredential, day: dt.date, destination: IO[bytes]) -> int: ...


class HttpTransport:
    """``GET <gateway>/settlements/<client-id>/<day>.csv``, signed and verified by the wallet client."""

    def download(self, *, credential: WalletCredential, day: dt.date, destination: IO[bytes]) -> int:
        try:
            return wallet_client_for(credential=credential).download_settlement_file(day=day, destination=destination)
        except WalletBusinessFailure as failure:
            raise FileUnavailable(failure.result_code) from None
        except WalletUnknownOutcome as unknown:
            raise FileUnavailable(unknown.reason) from None


# Per super app code; a wallet that publishes over SFTP gets its own entry here.
TRANSPORTS: dict[str, SettlementTransport] = {}
DEFAULT_TRANSPORT: SettlementTransport = HttpTransport()


def transport_for(super_app_code: str) -> SettlementTransport:
    return TRANSPORTS.get(super_app_code, DEFAULT_TRANSPORT)
