"""The classic gateway (``gateway.do``, §8) for orderStr payments and pre-authorisations: the orderStrs
themselves (a trade, a freeze), and the server calls that settle them (trade query, refund, refund query, close;
capture, unfreeze, detail query). Reached through ``WalletClient``.

A call is the common parameters plus ``biz_content``, signed RSA2 like an orderStr and POSTed form-encoded.
The answer ``{"<method>_response": {...}, "sign": "..."}`` is verified over the exact text of the response
object as received, then mapped: ``10000`` → a typed result, ``4xxxx`` → ``WalletBusinessFailure`` (the
``sub_code``), anything uncertain (``20000``, ``ACQ.SYSTEM_ERROR``, transport, 5xx, unreadable) →
``WalletUnknownOutcome``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import httpx

from apps.core.money import Money, currency_exponent

from . import evidence, keys, transport
from .errors import ResponseSignatureError, WalletBusinessFailure, WalletUnknownOutcome
from .messages import MessageError, ResultStatus
from .orderstr import build_order_str, verify_rsa2

if TYPE_CHECKING:
    from .client import WalletConfig

logger = logging.getLogger(__name__)
T = TypeVar("T")

BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # the gateway's clock
SUCCESS = "10000"
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_PAY_TIMEOUT = re.compile(r"([1-9][0-9]*)([mhd])")
_PAY_TIMEOUT_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def classic_time(moment: dt.datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in Beijing time; a naive datetime is refused rather than guessed."""
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is required")
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def classic_amount(amount: Money) -> str:
    """Major units with two decimals (``"12.50"``); the classic gateway knows no other exponent."""
    if currency_exponent(amount.currency) != 2:
        raise ValueError(f"the classic gateway takes only two-decimal currencies, not {amount.currency}")
    return amount.to_major_string()


def trans_currency(amount: Money) -> dict[str, str]:
    """``trans_currency`` for an amount in anything but CNY, the gateway's own currency."""
    return {} if amount.currency == "CNY" else {"trans_currency": amount.currency}


def checked_pay_timeout(value: str) -> str:
    """A freeze's ``pay_timeout``: whole minutes, hours or days (``90m``, ``2d``) from 1m to 15d."""
    match = _PAY_TIMEOUT.fullmatch(value)
    if not match or dt.timedelta(**{_PAY_TIMEOUT_UNITS[match[2]]: int(match[1])}) > dt.timedelta(days=15):
        raise ValueError(f"pay_timeout must be from 1m to 15d in whole m, h or d, not {value!r}")
    return value


class ClassicGateway:
    """One app (``classic_app_id``) at one classic gateway, signing with the client's key."""

    def __init__(self, config: WalletConfig, http: httpx.Client) -> None:
        if not config.classic_app_id:
            raise ValueError(f"{config.client_id} has no classic_app_id at this super app")
        self.config = config
        self._http = http

    def order_str(self, method: str, biz: dict, *, notify_url: str) -> str:
        """The signed orderStr of ``method`` for ``my.tradePay({orderStr})``; no HTTP."""
        return build_order_str(self._private_key(), self._params(method, biz, notify_url=notify_url))

    def call(self, method: str, biz: dict, parse: Callable[[dict], T]) -> T:
        """POST one API call and map its answer (see the module docstring)."""
        if not self.config.classic_gateway_url:
            raise ValueError("this super app has no classic gateway URL")
        form = build_order_str(self._private_key(), self._params(method, biz))
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        with evidence.recorded(self.config, method, biz) as exchange:
            response = transport.post(
                self._http, exchange, self.config.classic_gateway_url, content=form.encode(), headers=headers
            )
            answer, exchange.signature_verified = self._verified_answer(method, response)
            code, sub_code = str(answer.get("code", "")), str(answer.get("sub_code", ""))
            # ACQ.SYSTEM_ERROR ("call again with the same parameters") also comes as a 40004.
            refused = code.startswith("4") and not sub_code.endswith("SYSTEM_ERROR")
            # Kept as the OpenAPI's S/F/U, so one filter reads both protocols.
            status = (
                ResultStatus.SUCCESS if code == SUCCESS else ResultStatus.FAILED if refused else ResultStatus.UNKNOWN
            )
            exchange.result_status = status.value
            exchange.result_code = sub_code or code
            logger.info("wallet %s → %s %s", method, code, sub_code)
            if code == SUCCESS:
                try:
                    return parse(answer)
                except MessageError as error:
                    raise WalletUnknownOutcome(f"{method}: malformed answer ({error})") from None
            if refused:
                raise WalletBusinessFailure(sub_code or code, str(answer.get("sub_msg") or answer.get("msg", "")))
            raise WalletUnknownOutcome(f"{method}: {code} {sub_code}".strip(), result_code=sub_code or code)

    def _verified_answer(self, method: str, response: httpx.Response) -> tuple[dict, bool]:
        """The ``…_response`` object (``error_response`` for a call the gateway could not route), its
        signature checked over its text exactly as received, and whether it was signed. Unsigned failures are
        accepted, as the OpenAPI client accepts them; an unsigned success is not."""
        try:
            text = response.content.decode("utf-8")
            members = _members(text)
            key = f"{method.replace('.', '_')}_response"
            raw = members.get(key) or members.get("error_response")
            answer = json.loads(raw) if raw else None
            if not isinstance(answer, dict):
                raise MessageError(f"no {key}")
            signature = json.loads(members["sign"]) if "sign" in members else None
        except (ValueError, RecursionError) as error:  # MessageError and UnicodeDecodeError are ValueErrors
            raise WalletUnknownOutcome(f"{method}: unreadable answer ({error})") from None
        if signature is None and answer.get("code") != SUCCESS:
            return answer, False
        public_key = keys.load_public_key(self.config.wallet_public_key_pem)
        if not isinstance(signature, str) or not verify_rsa2(public_key, raw.encode("utf-8"), signature):
            raise ResponseSignatureError(f"{method}: the answer's signature does not verify")
        return answer, True

    def _params(self, method: str, biz: dict, **extra: str) -> dict[str, str]:
        return {
            "app_id": self.config.classic_app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": classic_time(dt.datetime.now(dt.UTC)),
            "version": "1.0",
            "biz_content": json.dumps(biz, separators=(",", ":"), ensure_ascii=False),
            **extra,
        }

    def _private_key(self):
        return keys.load_private_key(self.config.private_key_pem)


def _members(text: str) -> dict[str, str]:
    """The exact text of each member of a top-level JSON object: the signature covers the response object as
    the gateway wrote it, so it must be cut out of the answer, never re-serialised."""
    decoder = json.JSONDecoder()
    index = _WHITESPACE.match(text).end()
    if text[index : index + 1] != "{":
        raise ValueError("not a JSON object")
    members: dict[str, str] = {}
    index = _WHITESPACE.match(text, index + 1).end()
    while text[index : index + 1] != "}":
        if members:
            if text[index : index + 1] != ",":
                raise ValueError("expected ',' between members")
            index = _WHITESPACE.match(text, index + 1).end()
        name, index = decoder.raw_decode(text, index)
        index = _WHITESPACE.match(text, index).end()
        if not isinstance(name, str) or text[index : index + 1] != ":":
            raise ValueError("expected a member name and ':'")
        start = _WHITESPACE.match(text, index + 1).end()
        _, end = decoder.raw_decode(text, start)
        members[name] = text[start:end]
        index = _WHITESPACE.match(text, end).end()
    if text[index + 1 :].strip():
        raise ValueError("text after the JSON object")
    return members
