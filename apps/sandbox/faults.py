"""Fault injection: the misbehaviour a real wallet shows now and then, on demand (see README.md).

Faults are a plain mapping ``{name: value}``; flags hold ``True``, numeric faults an ``int``. A client's
stored faults apply to every call; the ``X-Sandbox-Faults`` header adds to (or switches off) them for one.
"""

from __future__ import annotations

HEADER = "X-Sandbox-Faults"

# name -> (inclusive maximum for a numeric fault, or None for a flag)
KNOWN = {
    "latency": 60_000,
    "http_500": None,
    "result_u": None,
    "drop_response": None,
    "duplicate_notify": None,
    "out_of_order_notify": None,
    "late_notify": 86_400,
    "bad_signature": None,
}
_FLAG_VALUES = {"": True, "1": True, "true": True, "on": True, "0": False, "false": False, "off": False}


class FaultError(ValueError):
    pass


def validate(mapping: object) -> dict:
    """A client's ``faults`` JSON, normalised; raises ``FaultError`` naming what is wrong."""
    if not isinstance(mapping, dict):
        raise FaultError("faults must be a JSON object")
    return {name: _value(name, value) for name, value in mapping.items()}


def parse_header(value: str) -> dict:
    """``latency=200, result_u, bad_signature=off`` -> ``{"latency": 200, "result_u": True, ...}``."""
    faults = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, raw = item.partition("=")
        faults[name.strip()] = _value(name.strip(), raw.strip())
    return faults


def merged(client_faults: dict, request_faults: dict) -> dict:
    """The faults in force for one call: the request's override the client's; switched-off ones drop out."""
    return {name: value for name, value in {**client_faults, **request_faults}.items() if value}


def _value(name: str, raw: object) -> bool | int:
    if name not in KNOWN:
        raise FaultError(f"unknown fault {name!r}")
    maximum = KNOWN[name]
    if maximum is None:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in _FLAG_VALUES:
            return _FLAG_VALUES[raw.lower()]
        raise FaultError(f"fault {name!r} is a flag (no value, or on/off)")
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= maximum:
        raise FaultError(f"fault {name!r} needs a whole number from 0 to {maximum}")
    return raw
