"""Who may get a 2xx from which route, by HTTP method: T-SEC-2's allow table (OWASP API5, function-level
authorization), checked by ``test_t_sec_2_allow_table.py``.

Deny by default. A method not listed for a route is refused to every role, and a route the URL resolver serves
but this table does not name fails the suite: add it here, with the roles that may use each method, when you
add a route. Keys are the resolver's route patterns, exactly as ``str(pattern)`` spells them. The admin site's
own pages (``admin:`` namespace) are walked by ``tests/test_isolation.py`` (every registered model admin,
every tenant) instead; the second-factor page beside them is listed here.

Refused means 401, 403, 404 or 405, a redirect to the admin's sign-in page (how a page says 401), 400
``auth.merchant_id_required`` (an ISV key that names no merchant on a merchant's endpoint), or on the sandbox's
wallet protocols (``REFUSED_IN_BODY``) an HTTP 200 whose body is a refusal.
"""

from __future__ import annotations

import enum


class Caller(enum.StrEnum):
    """The roles the table is about. Each acts on tenant A (ISV A, its merchant A1, A1's mini program)."""

    ANONYMOUS = "anonymous"
    USER_SESSION = "user session"  # a wallet user's session in A1's mini program
    MERCHANT_KEY = "merchant key"  # the key of the merchant the call is about
    ISV_KEY = "ISV key"  # A's key, naming no merchant
    ISV_KEY_FOR_MERCHANT = "ISV key + Merchant-Id"  # A's key, naming the merchant the call is about
    OTHER_ISV_KEY = "other ISV's key"  # B's key: A's ids in the path, else A's merchant in Merchant-Id
    MERCHANT_STAFF = "merchant staff"  # A1's owner, signed in to the admin
    ISV_STAFF = "ISV staff"  # A's admin, signed in to the admin
    OPERATOR = "operator"  # the platform's operator, signed in to the admin


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

EVERYONE = frozenset(Caller)
NOBODY: frozenset[Caller] = frozenset()
SESSION = frozenset({Caller.USER_SESSION})
# Keys acting for one merchant: its own, or its ISV's naming it.
FOR_MERCHANT = frozenset({Caller.MERCHANT_KEY, Caller.ISV_KEY_FOR_MERCHANT})
KEYS = FOR_MERCHANT | {Caller.ISV_KEY}
ISV_KEYS = frozenset({Caller.ISV_KEY, Caller.ISV_KEY_FOR_MERCHANT})
ISV_KEY_FOR_IT = frozenset({Caller.ISV_KEY_FOR_MERCHANT})
STAFF = frozenset({Caller.MERCHANT_STAFF, Caller.ISV_STAFF, Caller.OPERATOR})
# The API reads bearer credentials only: to it, someone signed in to the admin is anonymous.
NO_API_CREDENTIAL = STAFF | {Caller.ANONYMOUS}

# What the super app calls: only a request signed with the super app's key is accepted, and none of the roles
# above holds that key.
SUPER_APP = NOBODY
# What the sandbox's clients (merchants' servers, signing with their keys) call.
WALLET_CLIENTS = NOBODY
# The demo merchant's webhook endpoint: only deliveries signed with the mini program's webhook secret.
WEBHOOK_SENDER = NOBODY

PLATFORM: dict[str, dict[str, frozenset[Caller]]] = {
    # A redirect to the admin, whatever the method.
    "": dict.fromkeys(METHODS, EVERYONE),
    "healthz": {"GET": EVERYONE},
    "readyz": {"GET": EVERYONE},
    "metrics": {"GET": NOBODY},  # the scraper holds METRICS_TOKEN, which none of these roles has
    "admin/second-factor/": {"GET": STAFF, "POST": STAFF},
    # --- onboarding: ISV keys write, keys acting for the merchant read ---
    "api/v1/merchant/license": {"GET": FOR_MERCHANT, "PUT": ISV_KEY_FOR_IT},
    "api/v1/merchant/registrations": {"GET": FOR_MERCHANT, "POST": ISV_KEY_FOR_IT},
    "api/v1/merchants": {"GET": ISV_KEYS, "POST": frozenset({Caller.ISV_KEY})},  # onboarding names no merchant
    "api/v1/wallet-credentials": {"GET": KEYS, "POST": ISV_KEYS},
    "api/v1/super-apps": {"GET": KEYS},
    "api/v1/merchant": {"GET": FOR_MERCHANT},
    # --- keys: only an ISV key mints or revokes one ---
    "api/v1/api-keys": {"GET": KEYS, "POST": ISV_KEYS},
    "api/v1/api-keys/<public_id:key_id>": {"GET": KEYS, "DELETE": ISV_KEYS},
    # --- mini programs and the catalogue: ISV keys write; a user session browses the catalogue ---
    "api/v1/mini-programs": {"GET": FOR_MERCHANT, "POST": ISV_KEY_FOR_IT},
    "api/v1/mini-programs/<public_id:mini_program_id>": {"GET": KEYS, "PATCH": ISV_KEYS},
    "api/v1/mini-programs/<public_id:mini_program_id>/features": {"GET": KEYS, "POST": ISV_KEYS},
    "api/v1/mini-programs/<public_id:mini_program_id>/webhook-secret": {"GET": KEYS, "POST": ISV_KEYS},
    "api/v1/products": {"GET": FOR_MERCHANT | SESSION, "POST": ISV_KEY_FOR_IT},
    "api/v1/products/<public_id:product_id>": {"GET": KEYS | SESSION, "PATCH": ISV_KEYS},
    # --- payments: a user session buys, cancels and reports; refunds, captures and releases take a key ---
    "api/v1/orders": {"GET": FOR_MERCHANT | SESSION, "POST": FOR_MERCHANT | SESSION},
    "api/v1/orders/<public_id:order_id>": {"GET": KEYS | SESSION},
    "api/v1/orders/<public_id:order_id>/cancel": {"POST": KEYS | SESSION},
    "api/v1/orders/<public_id:order_id>/client-result": {"POST": KEYS | SESSION},
    "api/v1/orders/<public_id:order_id>/refunds": {"GET": KEYS | SESSION, "POST": KEYS},
    "api/v1/preauthorizations": {"GET": FOR_MERCHANT | SESSION, "POST": FOR_MERCHANT | SESSION},
    "api/v1/preauthorizations/<public_id:preauthorization_id>": {"GET": KEYS | SESSION},
    "api/v1/preauthorizations/<public_id:preauthorization_id>/capture": {"POST": KEYS},
    "api/v1/preauthorizations/<public_id:preauthorization_id>/release": {"POST": KEYS},
    # A mini program trades its user's auth code for a session: no credential, and no key (a key is refused).
    "api/v1/sessions": {"POST": NO_API_CREDENTIAL},
    "api/v1/schema/": {"GET": EVERYONE},
    "api/v1/docs/": {"GET": EVERYONE},
    # --- notifications from super apps ---
    "callbacks/<str:callback_token>/payments/notify": {"POST": SUPER_APP},
    "callbacks/<str:callback_token>/refunds/notify": {"POST": SUPER_APP},
    "callbacks/<str:callback_token>/merchants/notify-registration": {"POST": SUPER_APP},
    "callbacks/<str:callback_token>/classic/notify": {"POST": SUPER_APP},
}

# The sandbox wallet: another party, served beside the platform outside production (``SANDBOX_ENABLED``).
# Its OpenAPI and its classic gateway answer every POST with HTTP 200 and the verdict in the body, as the
# super app's protocol does: the roles above get a refusal there (``REFUSED_IN_BODY``).
SANDBOX_OPENAPI = [
    f"sandbox/{version}{endpoint}"
    for version in ("v1/", "v2/", "ams/api/v1/")
    for endpoint in (
        "payments/pay",
        "payments/inquiryPayment",
        "payments/cancel",
        "payments/capture",
        "payments/refund",
        "payments/inquiryRefund",
        "authorizations/applyToken",
        "merchants/registration",
        "merchants/inquiryRegistrationStatus",
    )
]
REFUSED_IN_BODY = frozenset([*SANDBOX_OPENAPI, "sandbox/gateway.do"])
SANDBOX: dict[str, dict[str, frozenset[Caller]]] = {
    **{route: {"POST": WALLET_CLIENTS} for route in SANDBOX_OPENAPI},
    "sandbox/gateway.do": {"GET": WALLET_CLIENTS, "POST": WALLET_CLIENTS},
    "sandbox/settlements/<str:client_id>/<isodate:day>.csv": {"GET": WALLET_CLIENTS},
    # The wallet's pages for its users: whoever holds the link (the sandbox has no sign-in).
    "sandbox/": {"GET": EVERYONE},
    "sandbox/public-key": {"GET": EVERYONE},
    "sandbox/authcode": {"GET": EVERYONE},
    "sandbox/cashier/<slug:payment_id>": {"GET": EVERYONE, "POST": EVERYONE},
    "sandbox/tradepay": {"GET": EVERYONE},
    "sandbox/tradepay/<slug:wallet_no>": {"POST": EVERYONE},
    # The demo mini programs' pages, and the demo merchants' servers.
    "demo/": {"GET": EVERYONE},
    "demo/<slug:app_id>/": {"GET": EVERYONE},
    "demo/rentals/<public_id:preauthorization_id>/stop": {"POST": SESSION},
    "demo/merchant-webhooks/<str:app_id>": {"POST": WEBHOOK_SENDER},
}
ALLOW: dict[str, dict[str, frozenset[Caller]]] = {**PLATFORM, **SANDBOX}
