"""How a wallet call can end other than in success.

The distinction callers rely on: ``WalletBusinessFailure`` means the wallet answered ``F`` — a definite
"no", safe to record as failed. Everything else (``U``, timeouts, connection errors, 5xx, an unparsable or
unverifiable answer) is ``WalletUnknownOutcome``: the call may or may not have taken effect, and only an
inquiry can tell.
"""

from __future__ import annotations


class WalletError(Exception):
    pass


class WalletUnknownOutcome(WalletError):
    def __init__(self, reason: str, *, result_code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result_code = result_code


class ResponseSignatureError(WalletUnknownOutcome):
    """The answer's signature did not verify: it is not the wallet's word, so it is not a result."""


class WalletBusinessFailure(WalletError):
    def __init__(self, result_code: str, result_message: str = "") -> None:
        super().__init__(f"{result_code}: {result_message}")
        self.result_code = result_code
        self.result_message = result_message
