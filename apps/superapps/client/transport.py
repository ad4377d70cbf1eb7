"""One POST to a wallet, with every way it can fail to answer mapped to ``WalletUnknownOutcome``."""

from __future__ import annotations

import httpx

from .errors import WalletUnknownOutcome
from .evidence import Exchange


def post(
    http: httpx.Client, exchange: Exchange, url: str, *, content: bytes, headers: dict[str, str]
) -> httpx.Response:
    """The wallet's HTTP 200 answer, also noted on ``exchange``. A timeout, a failed connection or another
    status tells nothing about whether the wallet acted, so each is an unknown outcome."""
    operation = exchange.operation
    try:
        response = http.post(url, content=content, headers=headers)
    except httpx.TimeoutException as error:
        raise WalletUnknownOutcome(f"{operation}: timed out ({type(error).__name__})") from None
    except httpx.TransportError as error:
        raise WalletUnknownOutcome(f"{operation}: connection failed ({type(error).__name__})") from None
    exchange.received(response)
    if response.status_code != 200:
        raise WalletUnknownOutcome(f"{operation}: HTTP {response.status_code}")
    return response
