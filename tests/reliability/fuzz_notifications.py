"""Malformed notification bodies for T-SEC-5: Hypothesis strategies for what a broken, hostile or confused
sender could post to the inbound callback endpoints.

Each endpoint has a *template*: a well-formed notification about a real object. The strategies break it —
one required field of the wrong type or missing, an amount that is no amount, a status that is no status —
or send no notification at all: random bytes, text in odd encodings, any JSON, nesting deeper than a parser's
stack, numbers no float holds (``1e309``), NUL and lone surrogates, a body of about a megabyte. Every body
they draw is malformed, so whether signed or not it must be refused and change nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import urllib.parse
from typing import Any

from hypothesis import strategies as st

#: Numbers as JSON text that no float or 64-bit integer holds, and numbers that are no amount at all.
HUGE_NUMBERS = ["1e309", "-1e309", "1e-400", "9" * 400, "-" + "9" * 30, "1" + "0" * 5000, "NaN", "Infinity"]
BAD_AMOUNT_VALUES = ["", "-1", "0x10", "12.50", "1e3", " 1", "\uff11\uff12", "9" * 19, "1" + "0" * 400, "NaN", "1\x00"]
BAD_MAJOR_AMOUNTS = ["", "abc", "-", "1e999999999", "-1e999999999", "1e309", "NaN", "Infinity", "10.001", "1,00"]
#: Every status value a notification may carry: a broken status is none of them.
KNOWN_STATES = frozenset({"S", "F", "U", "A", "SUCCESS", "FAIL", "PENDING", "COMPLETED", "REJECTED"})
KNOWN_STATES |= {"WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_CLOSED", "TRADE_FINISHED"}
KNOWN_STATES |= {"trade_status_sync", "fund_auth_freeze", "fund_auth_unfreeze"}
ODD_TEXT = ["", "\x00", "a\x00b", "\ud800", "\U0010ffff", "\U0001d7d8", "\u202e", "' OR 1=1 --", "%s%n", "\r\n"]

_text = st.one_of(st.text(max_size=30), st.sampled_from(ODD_TEXT))
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**200),
    st.floats(),  # NaN and infinities included: json.dumps writes them as NaN / Infinity
    _text,
)
#: Any JSON value (and the non-standard NaN / Infinity tokens Python's json module reads).
json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)


#: One strategy per JSON type, to put a value of another type where a field has a type.
_BY_TYPE = {
    type(None): st.none(),
    bool: st.booleans(),
    int: st.integers(),
    float: st.floats(),
    str: _text,
    list: st.lists(_scalars, max_size=3),
    dict: st.dictionaries(_text, _scalars, max_size=3),
}


def _wrong_type(value: Any) -> st.SearchStrategy:
    """A JSON value of another type than ``value`` (a number for a string, a string for an object …)."""
    return st.one_of([strategy for kind, strategy in _BY_TYPE.items() if not isinstance(value, kind)])


@dataclasses.dataclass(frozen=True)
class Template:
    """A well-formed JSON notification and the fields a parser must insist on: each ``strict`` path (a tuple of
    keys) must be present with its type; ``amounts`` are ``{"currency", "value"}`` objects; ``enums`` map a
    path to the values it may take."""

    body: dict
    strict: tuple[tuple[str, ...], ...]
    amounts: tuple[tuple[str, ...], ...] = ()
    enums: tuple[tuple[str, ...], ...] = ()


def _at(body: dict, path: tuple[str, ...]) -> tuple[Any, str]:
    """The object holding the last key of ``path`` (whatever an earlier break left there) and that key."""
    for key in path[:-1]:
        body = body.get(key) if isinstance(body, dict) else None
    return body, path[-1]


@st.composite
def broken_json(draw, template: Template) -> bytes:
    """The template with one to three of its strict fields broken: wrong type, missing, a bad amount or an
    unknown enum value; written as JSON, with a huge number spliced in as text now and then."""
    body = copy.deepcopy(template.body)
    for _ in range(draw(st.sampled_from([1, 1, 2, 3]))):  # mostly one: the rest of the body stays valid
        kind = draw(st.sampled_from(["type", "missing", "amount", "enum"]))
        if kind == "amount" and template.amounts:
            parent, key = _at(body, draw(st.sampled_from(template.amounts)))
            if isinstance(parent, dict) and isinstance(parent.get(key), dict):
                field = draw(st.sampled_from(["value", "currency"]))
                bad = BAD_AMOUNT_VALUES if field == "value" else ["", "usd", "XXX", "US", "\x00SD"]
                parent[key][field] = draw(st.sampled_from(bad) | _wrong_type(""))
                continue
        if kind == "enum" and template.enums:
            parent, key = _at(body, draw(st.sampled_from(template.enums)))
            if isinstance(parent, dict):
                parent[key] = draw(_text.filter(lambda value: value not in KNOWN_STATES))
                continue
        parent, key = _at(body, draw(st.sampled_from(template.strict)))
        if not isinstance(parent, dict) or key not in parent:
            continue  # an earlier break removed or replaced the parent
        if kind == "missing":
            del parent[key]
        else:
            parent[key] = draw(_wrong_type(parent[key]))
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    if template.amounts and draw(st.integers(0, 3)) == 0:
        # "value": "1250" → "value": 1e309 (a number as text, no longer a string)
        parent, key = _at(body, template.amounts[0])
        if isinstance(parent.get(key), dict) and isinstance(parent[key].get("value"), str):
            text = text.replace(json.dumps(parent[key]["value"]), draw(st.sampled_from(HUGE_NUMBERS)), 1)
    return text.encode("utf-8", "surrogatepass")


def deep_nesting() -> st.SearchStrategy[bytes]:
    """Arrays or objects nested thousands deep: more than the parser's recursion limit allows."""
    return st.builds(
        lambda depth, opener: (opener[0] * depth + opener[1] * depth).encode(),
        st.integers(min_value=500, max_value=100_000),
        st.sampled_from([("[", "]"), ('{"a":', "}")]),
    )


def random_json() -> st.SearchStrategy[bytes]:
    return st.builds(lambda value: json.dumps(value).encode("utf-8", "surrogatepass"), json_values)


def random_text() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda text, encoding: text.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace"),
        st.text(max_size=500),
        st.sampled_from(["utf-8", "utf-16", "utf-32", "latin-1"]),
    )


def json_bodies(template: Template) -> st.SearchStrategy[bytes]:
    """Malformed bodies for a JSON notification endpoint: three in four a broken template (what tests the
    parser's strictness), the rest no notification at all."""
    broken = broken_json(template)
    junk = st.one_of(
        st.binary(max_size=2000),
        random_text(),
        random_json().filter(lambda raw: not raw.startswith(b"{")),
        deep_nesting(),
    )
    return st.sampled_from([broken, broken, broken, junk]).flatmap(lambda strategy: strategy)


# --- the classic gateway: form-encoded fields ---------------------------------------------------------------

#: Classic fields a parser must insist on (all of a trade's are required; the amounts are major units).
CLASSIC_REQUIRED = ("notify_type", "notify_id", "app_id", "out_trade_no", "trade_no", "trade_status", "total_amount")


@st.composite
def broken_classic_fields(draw, template: dict[str, str]) -> dict[str, str]:
    """A classic trade notification with a required field missing, or an amount, currency, type or status that
    is none."""
    fields = dict(template)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        key = draw(st.sampled_from([*CLASSIC_REQUIRED, "trans_currency"]))
        choice = draw(st.sampled_from(["missing", "bad"]))
        if choice == "missing" and key != "trans_currency":
            fields.pop(key, None)
        elif key == "total_amount":
            fields[key] = draw(st.sampled_from(BAD_MAJOR_AMOUNTS))
        elif key == "trans_currency":
            fields[key] = draw(st.sampled_from(["usd", "XXX", "CNY\x00", "€"]))  # an empty one means CNY
        elif key in ("notify_type", "trade_status"):
            fields[key] = draw(_text.filter(lambda value: value not in KNOWN_STATES))
        else:
            fields[key] = ""
    return fields


def form_encode(fields: dict[str, str]) -> bytes:
    """``application/x-www-form-urlencoded`` UTF-8, lone surrogates written as they are."""
    return urllib.parse.urlencode(fields, encoding="utf-8", errors="surrogatepass").encode()


def form_bodies(template: dict[str, str]) -> st.SearchStrategy[bytes]:
    """Malformed bodies for the classic endpoint: broken fields, or no form at all."""
    return st.one_of(
        st.builds(form_encode, broken_classic_fields(template)),
        st.binary(max_size=2000),
        random_text(),
        st.builds(lambda value: form_encode({"data": json.dumps(value)}), json_values),
    )
