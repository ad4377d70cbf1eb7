"""HTTP faces of the sandbox wallet: the signed OpenAPI gateway, the classic gateway (``gateway.do``), the
cashier pages, the auth-code stand-in, settlement files and the public key. Views translate HTTP to handlers
and services, nothing more.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import time
import urllib.parse

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import classic, conf, faults, gateway, selectors, services, signing
from .api import ApiCall
from .models import TEST_USERS, ClassicOrder, Payment, SandboxClient
from .protocol import Dialect, WalletError, contains_nul, dumps, illegal, now_iso, result

PAID, CANCELLED = "9000", "6001"  # my.tradePay result codes (§9.1)
FREEZE_NOTICE = "The amount is frozen on your balance until the merchant captures or releases it."


# --- Signed OpenAPI ------------------------------------------------------------------------------


@csrf_exempt
def openapi(request: HttpRequest, *, dialect: Dialect, handler) -> HttpResponse:
    """Authenticate, apply the faults in force, run the handler, and sign whatever is answered."""
    client_id = request.headers.get("Client-Id", "")
    if request.method != "POST":
        return _signed_json(request, client_id, _failure("METHOD_NOT_SUPPORTED", "use POST"), status=405)
    try:
        client, signed_path = _authenticate(request, body=request.body)
    except WalletError as error:
        return _signed_json(request, client_id, _failure(error.code, error.message, error.status))
    try:
        fault_settings = faults.merged(client.faults, faults.parse_header(request.headers.get(faults.HEADER, "")))
    except faults.FaultError as error:
        malformed = _failure("PARAM_ILLEGAL", f"{faults.HEADER}: {error}")
        return _signed_json(request, client_id, malformed, path=signed_path)
    reply = functools.partial(
        _signed_json, request, client_id, path=signed_path, corrupt=bool(fault_settings.get("bad_signature"))
    )
    response = _process(request, reply, client=client, dialect=dialect, handler=handler, fault_settings=fault_settings)
    if fault_settings.get("latency"):  # the wallet has acted; only its answer is slow, as if in transit
        time.sleep(fault_settings["latency"] / 1000)
    return response


def _process(request: HttpRequest, reply, *, client, dialect, handler, fault_settings: dict) -> HttpResponse:
    """The call itself, with the faults that change what is processed or answered."""
    if fault_settings.get("http_500"):
        return reply(_failure("UNKNOWN_EXCEPTION", "injected fault: http_500", "U"), status=500)
    try:
        call = ApiCall(
            client=client,
            dialect=dialect,
            body=_json_object(request.body),
            faults=fault_settings,
            cashier_url=lambda payment_id: _absolute_url(request, "sandbox:cashier", payment_id),
        )
        payload = handler(call)
    except WalletError as error:
        payload = _failure(error.code, error.message, error.status)
    if fault_settings.get("drop_response"):
        return HttpResponse(status=502)
    if fault_settings.get("result_u") and payload["result"]["resultStatus"] != "U":
        payload = _failure("UNKNOWN_EXCEPTION", "injected fault: result_u (the request was processed)", "U")
    return reply(payload)


def _authenticate(request: HttpRequest, *, body: bytes) -> tuple[SandboxClient, str]:
    """The client named by ``Client-Id`` once the request's signature verifies with its key, and the path the
    caller signed: the path as received, or the same path below the sandbox's mount point, which is what an
    SDK configured with ``gateway_url=<host>/sandbox`` signs while it posts to ``/sandbox/...``."""
    client_id = request.headers.get("Client-Id", "")
    client = selectors.client_get(client_id) if client_id and not contains_nul(client_id) else None
    if client is None:
        raise WalletError("INVALID_CLIENT", "Client-Id is missing or not registered")
    header = request.headers.get("Signature", "")
    request_time = request.headers.get("Request-Time", "")
    if not header:
        raise WalletError("INVALID_SIGNATURE", "the Signature header is missing")
    if not request_time:
        raise illegal("Request-Time", "header is required")
    key_version = signing.parse_signature_header(header).get("keyversion")
    if key_version and key_version != str(client.key_version):
        raise WalletError("KEY_NOT_FOUND", f"keyVersion {key_version} is not registered for this client")
    public_key = signing.load_public_key(client.public_key_pem)
    mount = reverse("sandbox:public-key").removesuffix("public-key")
    for path in (request.path, "/" + request.path.removeprefix(mount)):
        if signing.verify_signature_header(
            public_key,
            method=request.method,
            path=path,
            client_id=client_id,
            timestamp=request_time,
            body=body,
            header=header,
        ):
            return client, path
    raise WalletError("INVALID_SIGNATURE", "the signature does not verify")


def _json_object(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise WalletError("MSG_PARSE_ERROR", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise WalletError("MSG_PARSE_ERROR", "the body must be a JSON object")
    if contains_nul(body):
        raise WalletError("PARAM_ILLEGAL", "the body must not contain NUL characters")
    return body


def _failure(code: str, message: str, status: str = "F") -> dict:
    return {"result": result(code, status, message)}


def _signed_json(request: HttpRequest, client_id: str, payload: dict, **options) -> HttpResponse:
    return _signed(request, client_id, dumps(payload).encode(), "application/json; charset=UTF-8", **options)


def _signed(
    request: HttpRequest,
    client_id: str,
    body: bytes,
    content_type: str,
    *,
    path: str = "",
    status: int = 200,
    corrupt: bool = False,
) -> HttpResponse:
    """Sign over ``<method> <path>\\n<client-id>.<response-time>.<body>``, ``path`` being the one the caller
    signed (the request's path if unknown); lower-case header names, because the official Python SDK only
    reads those (§10.1)."""
    response_time = now_iso()
    signature = signing.signature_header(
        services.wallet_private_key(),
        method=request.method,
        path=path or request.path,
        client_id=client_id,
        timestamp=response_time,
        body=body,
        key_version=services.WALLET_KEY_VERSION,
    )
    response = HttpResponse(body, content_type=content_type, status=status)
    response.headers["client-id"] = client_id
    response.headers["response-time"] = response_time
    response.headers["signature"] = signing.corrupt(signature) if corrupt else signature
    return response


def _absolute_url(request: HttpRequest, name: str, *args) -> str:
    path = reverse(name, args=args)
    base = conf.get("BASE_URL")
    return base.rstrip("/") + path if base else request.build_absolute_uri(path)


# --- Classic gateway (gateway.do) ----------------------------------------------------------------


@csrf_exempt
@require_http_methods(["GET", "POST"])
def classic_gateway(request: HttpRequest) -> HttpResponse:
    """``gateway.do``: parameters in the form body or the query string (python-alipay-sdk sends a GET), the
    caller authenticated by its RSA2 signature, then the faults in force, the handler, and a signed answer."""
    params = {**request.GET.dict(), **request.POST.dict()}
    method = params.get("method", "")
    handler = gateway.HANDLERS.get(method)
    key = f"{method.replace('.', '_')}_response" if handler else "error_response"
    try:
        client = classic.authenticate(params)
        if handler is None:
            raise WalletError("isv.invalid-method", f"method must be one of {', '.join(gateway.HANDLERS)}")
        fault_settings = faults.merged(client.faults, faults.parse_header(request.headers.get(faults.HEADER, "")))
    except WalletError as error:
        return _classic_signed(key, gateway.failure(error))
    except faults.FaultError as error:
        return _classic_signed(key, gateway.failure(WalletError(classic.INVALID, f"{faults.HEADER}: {error}")))
    reply = functools.partial(_classic_signed, key, corrupt=bool(fault_settings.get("bad_signature")))
    if fault_settings.get("http_500"):
        return reply(gateway.SYSTEM_ERROR, status=500)
    try:
        payload = gateway.success(handler(client, classic.biz_content(params)))
    except WalletError as error:
        payload = gateway.failure(error)
    if fault_settings.get("drop_response"):
        return HttpResponse(status=502)
    response = reply(gateway.SYSTEM_ERROR if fault_settings.get("result_u") else payload)
    if fault_settings.get("latency"):  # the wallet has acted; only its answer is slow, as if in transit
        time.sleep(fault_settings["latency"] / 1000)
    return response


def _classic_signed(key: str, payload: dict, *, status: int = 200, corrupt: bool = False) -> HttpResponse:
    """``{"<key>": {…}, "sign": "…"}``, signed (RSA2, wallet key) over the exact text of the ``<key>`` value."""
    content = dumps(payload)
    sign = signing.rsa2_sign(services.wallet_private_key(), content)
    if corrupt:
        sign = signing.corrupt_base64(sign)
    body = f'{{{json.dumps(key)}:{content},"sign":{json.dumps(sign)}}}'
    return HttpResponse(body.encode(), content_type="application/json; charset=utf-8", status=status)


# --- Public key, auth codes, settlement files ----------------------------------------------------


@require_GET
def public_key(request: HttpRequest) -> HttpResponse:
    return HttpResponse(services.wallet_key().public_key_pem, content_type="text/plain; charset=utf-8")


@require_GET
def auth_code(request: HttpRequest) -> JsonResponse:
    """Stands in for ``my.getAuthCode``: ``?appId=…&scopes=auth_base,USER_ID&user=alice``."""
    app_id = request.GET.get("appId", "")
    scopes = [scope.strip() for scope in request.GET.get("scopes", "auth_base").split(",") if scope.strip()]
    if not app_id or len(app_id) > 64 or not scopes or contains_nul([app_id, *scopes]):
        return JsonResponse({"error": "PARAM_ILLEGAL", "errorMessage": "appId and scopes are required"}, status=400)
    try:
        issued = services.auth_code_issue(app_id=app_id, login=request.GET.get("user", "alice"), scopes=scopes)
    except WalletError as error:
        return JsonResponse({"error": error.code, "errorMessage": error.message}, status=400)
    return JsonResponse({"authCode": issued.code, "authSuccessScopes": issued.scopes})


@require_GET
def settlement_file(request: HttpRequest, client_id: str, day) -> HttpResponse:
    """A day's settlement CSV, for a GET signed like an API call over an empty body."""
    caller = request.headers.get("Client-Id", "")
    try:
        client, signed_path = _authenticate(request, body=b"")
    except WalletError as error:
        return _signed_json(request, caller, _failure(error.code, error.message), status=401)
    if client.client_id != client_id:
        denied = _failure("ACCESS_DENIED", "not your settlement file")
        return _signed_json(request, caller, denied, path=signed_path, status=403)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=selectors.SETTLEMENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(selectors.settlement_rows(client=client, day=day))
    return _signed(request, caller, out.getvalue().encode(), "text/csv; charset=utf-8", path=signed_path)


# --- Cashier -------------------------------------------------------------------------------------


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The wallet's front page for people trying things out: open payments with their cashier, the test users."""
    awaiting = [
        {
            "payee": payment.payee_name,
            "amount": selectors.format_amount(payment.currency, payment.amount),
            "description": payment.order_description,
            "url": reverse("sandbox:cashier", args=[payment.payment_id]),
            "authorization": payment.authorization,
        }
        for payment in selectors.payments_awaiting_user()
    ]
    users = [
        {"login": seed.login, "name": seed.display_name, "balances": balances}
        for seed, balances in zip(TEST_USERS.values(), selectors.user_balances().values(), strict=True)
    ]
    return render(request, "sandbox/home.html", {"awaiting": awaiting, "users": users})


@xframe_options_sameorigin  # the my.* shim shows the cashier in a frame of the mini program page
@require_http_methods(["GET", "POST"])
def cashier(request: HttpRequest, payment_id: str) -> HttpResponse:
    """GET shows the cashier; a POST (CSRF-protected) presses ``action=pay`` or ``action=cancel``."""
    payment = _payment_or_404(payment_id)
    if request.method == "GET":
        return _cashier_page(request, services.payment_expire_if_due(payment=payment))
    action = request.POST.get("action")
    if action == "cancel":  # the user backs out: the payment stays payable, the mini program hears 6001
        return _back_to_merchant(request, payment.redirect_url, CANCELLED)
    if action != "pay":
        return _cashier_page(request, payment, error=WalletError("PARAM_ILLEGAL", "action must be pay or cancel"))
    try:
        services.payment_pay(payment_id=payment_id, login=request.POST.get("user", ""))
    except WalletError as error:
        return _cashier_page(request, _payment_or_404(payment_id), error=error)
    if payment.faults.get("latency"):  # paid already; only the way back to the merchant is slow
        time.sleep(payment.faults["latency"] / 1000)
    return _back_to_merchant(request, payment.redirect_url, PAID, freeze=payment.authorization)


def _payment_or_404(payment_id: str) -> Payment:
    payment = selectors.payment_get(payment_id)
    if payment is None:
        raise Http404("no such payment")
    return payment


def _cashier_page(request: HttpRequest, payment: Payment, error: WalletError | None = None) -> HttpResponse:
    """The cashier, or for an authorization payment the page where the user authorises (freezes) the amount."""
    authorization = payment.authorization
    done = "Funds are authorised (frozen)." if authorization else "This payment has been paid."
    if payment.is_expired(timezone.now()):
        state = "This payment has expired."
    else:
        states = {Payment.Status.SUCCESS: done, Payment.Status.CANCELLED: "This payment was cancelled."}
        state = states.get(payment.status, "")
    return render(
        request,
        "sandbox/cashier.html",
        {
            "heading": "Authorise a payment" if authorization else "Pay",
            "notice": FREEZE_NOTICE if authorization else "",
            "payee": payment.payee_name,
            "amount": selectors.format_amount(payment.currency, payment.amount),
            "description": payment.order_description,
            "reference": payment.payment_id,
            "state": state,
            "error": error,
            "users": selectors.cashier_users(currency=payment.currency, amount=payment.amount),
            "confirm_label": "Authorise" if authorization else "Pay",
            "action_url": reverse("sandbox:cashier", args=[payment.payment_id]),
        },
        status=400 if error else 200,
    )


def _back_to_merchant(request: HttpRequest, redirect_url: str, code: str, *, freeze: bool = False) -> HttpResponse:
    """Back to the merchant's page with ``resultCode`` appended, or a result page when it gave none."""
    if not redirect_url:
        return render(request, "sandbox/result.html", {"result_code": code, "paid": code == PAID, "freeze": freeze})
    parts = urllib.parse.urlsplit(redirect_url)
    query = f"{parts.query}&resultCode={code}" if parts.query else f"resultCode={code}"
    return HttpResponseRedirect(urllib.parse.urlunsplit(parts._replace(query=query)))


# --- Classic orderStr ----------------------------------------------------------------------------


@xframe_options_sameorigin
@require_GET
def tradepay(request: HttpRequest) -> HttpResponse:
    """``my.tradePay({orderStr})``: verify the orderStr, then the cashier or the pre-authorisation page."""
    try:
        client, order_request, content = classic.read_order_str(request.GET.get("orderStr", ""))
        order = services.classic_order_open(client=client, request=order_request, fingerprint=content)
    except WalletError as error:
        return render(request, "sandbox/error.html", {"error": error}, status=400)
    return _classic_page(request, services.classic_auth_expire_if_due(order=order))


@xframe_options_sameorigin
@require_POST
def tradepay_order(request: HttpRequest, wallet_no: str) -> HttpResponse:
    """The orderStr page's buttons: ``action=pay`` pays or freezes, ``action=cancel`` backs out (6001)."""
    order = _classic_order_or_404(wallet_no)
    action = request.POST.get("action")
    if action == "cancel":
        return render(request, "sandbox/result.html", {"result_code": CANCELLED, "paid": False})
    if action != "pay":
        return _classic_page(request, order, error=WalletError("PARAM_ILLEGAL", "action must be pay or cancel"))
    try:
        services.classic_order_confirm(wallet_no=wallet_no, login=request.POST.get("user", ""))
    except WalletError as error:
        return _classic_page(request, _classic_order_or_404(wallet_no), error=error)
    return render(request, "sandbox/result.html", {"result_code": PAID, "paid": True, "freeze": _is_freeze(order)})


def _classic_order_or_404(wallet_no: str) -> ClassicOrder:
    order = selectors.classic_order_get(wallet_no)
    if order is None:
        raise Http404("no such order")
    return order


def _is_freeze(order: ClassicOrder) -> bool:
    return order.kind == ClassicOrder.Kind.FREEZE


def _classic_page(request: HttpRequest, order: ClassicOrder, error: WalletError | None = None) -> HttpResponse:
    freeze = _is_freeze(order)
    if order.status == ClassicOrder.Status.SUCCESS:
        state = "Funds are authorised (frozen)." if freeze else "This order has been paid."
    elif order.status == ClassicOrder.Status.CLOSED or order.is_expired(timezone.now()):
        state = "This order is closed."
    else:
        state = ""
    return render(
        request,
        "sandbox/cashier.html",
        {
            "heading": "Authorise a pre-authorisation" if freeze else "Pay",
            "notice": FREEZE_NOTICE if freeze else "",
            "payee": order.client.name,
            "amount": selectors.format_amount(order.currency, order.amount),
            "description": order.title,
            "reference": order.wallet_no,
            "state": state,
            "error": error,
            "users": selectors.cashier_users(currency=order.currency, amount=order.amount),
            "confirm_label": "Authorise" if freeze else "Pay",
            "action_url": reverse("sandbox:tradepay-order", args=[order.wallet_no]),
        },
        status=400 if error else 200,
    )
