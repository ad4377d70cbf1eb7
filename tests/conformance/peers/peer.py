"""Third-party SDKs as conformance peers, run with ``.venv-conformance/bin/python`` (never the project's venv).

    peer.py COMMAND < request.json > result.json

It imports only the SDKs (global-open-sdk-python, python-alipay-sdk) and the standard library, never
project code. Keys arrive as the SDKs take them: AMS private keys as PKCS#1, public keys as
SubjectPublicKeyInfo (bare base64 bodies or PEM); python-alipay-sdk keys as PEM. Strings are text;
message bodies are UTF-8 text, as the SDKs sign them.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import sys
import urllib.parse

COMMANDS = {}


def command(name):
    def register(function):
        COMMANDS[name] = function
        return function

    return register


# --- Antom / AMS (global-open-sdk-python) ------------------------------------------------------------


@command("versions")
def versions(request):
    return {name: importlib.metadata.version(name) for name in request["packages"]}


@command("ams-sign")
def ams_sign(request):
    """The SDK's signature of a message: the URL-encoded value and the header the SDK's client sends."""
    from com.alipay.ams.api.tools import signature_tool

    value = signature_tool.sign(
        request.get("method", "POST"),
        request["path"],
        request["client_id"],
        request["timestamp"],
        request["body"],
        request["private_key"],
    )
    return {"signature": value, "header": f"algorithm=RSA256,keyVersion=1,signature={value}"}


@command("ams-verify")
def ams_verify(request):
    """``signature_tool.verify`` over the ``signature=`` value (URL-encoded, as the SDK expects)."""
    from com.alipay.ams.api.tools import signature_tool

    try:
        valid = signature_tool.verify(
            request.get("method", "POST"),
            request["path"],
            request["client_id"],
            request["timestamp"],
            request["body"],
            request["signature"],
            request["public_key"],
        )
    except Exception as error:  # rsa.VerificationError and friends: the SDK raises rather than say False
        return {"valid": False, "error": f"{type(error).__name__}: {error}"}
    return {"valid": valid}


@command("ams-check-webhook")
def ams_check_webhook(request):
    """``webhook_tool.check_signature`` over a whole ``Signature`` header, as a merchant checks a notification."""
    from com.alipay.ams.api.tools.webhook_tool import check_signature

    try:
        valid = check_signature(
            request.get("method", "POST"),
            request["path"],
            request["client_id"],
            request["timestamp"],
            request["body"],
            request["signature_header"],
            request["public_key"],
        )
    except Exception as error:
        return {"valid": False, "error": f"{type(error).__name__}: {error}"}
    return {"valid": valid}


def _http_post(url, headers=None, req_body=None, charset="UTF-8"):
    """The SDK's ``do_post`` contract, over the URL's own scheme and port.

    The SDK's transport always opens TLS to port 443 and sends the absolute URL as the request target, so
    it cannot reach a test server on loopback. Everything else (request building, signing, the headers it
    sends, reading the response headers and verifying the response signature) stays the SDK's own code.
    """
    from com.alipay.ams.api.exception.exception import AlipayApiException

    parts = urllib.parse.urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname, parts.port, timeout=15)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body=req_body.encode(charset), headers=headers)
        response = connection.getresponse()
        if response.status != 200:
            raise AlipayApiException(f"invalid http status {response.status}")
        return response.getheaders(), response.read()
    finally:
        connection.close()


def _pay_request(request):
    from com.alipay.ams.api.model.amount import Amount
    from com.alipay.ams.api.model.merchant import Merchant
    from com.alipay.ams.api.model.order import Order
    from com.alipay.ams.api.model.product_code_type import ProductCodeType
    from com.alipay.ams.api.request.pay.alipay_pay_request import AlipayPayRequest

    merchant = Merchant()
    merchant.merchant_display_name = request["merchant_display_name"]
    order = Order()
    order.reference_order_id = request["payment_request_id"]
    order.order_description = request["order_description"]
    order.order_amount = Amount(request["currency"], request["value"])
    order.merchant = merchant
    pay = AlipayPayRequest()
    pay.product_code = ProductCodeType.CASHIER_PAYMENT
    pay.payment_request_id = request["payment_request_id"]
    pay.payment_amount = Amount(request["currency"], request["value"])
    pay.order = order
    pay.payment_redirect_url = request["redirect_url"]
    pay.payment_notify_url = request["notify_url"]
    return pay


def _inquiry_request(request):
    from com.alipay.ams.api.request.pay.alipay_pay_query_request import AlipayPayQueryRequest

    query = AlipayPayQueryRequest()
    query.payment_request_id = request["payment_request_id"]
    return query


@command("ams-client-call")
def ams_client_call(request):
    """``DefaultAlipayClient.execute`` of an AMS request; returns the body the SDK accepted, or its error."""
    from com.alipay.ams.api import default_alipay_client

    default_alipay_client.do_post = _http_post
    client = default_alipay_client.DefaultAlipayClient(
        request["gateway_url"],
        request["client_id"],
        request["merchant_private_key"],
        request["alipay_public_key"],
    )
    builders = {"pay": _pay_request, "inquiryPayment": _inquiry_request}
    api_request = builders[request["api"]](request)
    # A gateway mounted under a path: the SDK signs request.path, not the gateway URL's path.
    api_request.path = request.get("path_prefix", "") + api_request.path
    try:
        body = client.execute(api_request)
    except Exception as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}", "path": api_request.path}
    return {"ok": True, "body": json.loads(body), "path": api_request.path}


# --- classic gateway (python-alipay-sdk) -------------------------------------------------------------


def _alipay(request):
    from alipay import AliPay

    return AliPay(
        appid=request.get("app_id", "2021000000000000"),
        app_private_key_string=request["private_key"],
        alipay_public_key_string=request["public_key"],
        sign_type=request.get("sign_type", "RSA2"),
    )


@command("alipay-client-api")
def alipay_client_api(request):
    """An orderStr from ``AliPay.client_api`` (build the common parameters, sign, URL-encode)."""
    order_str = _alipay(request).client_api(
        request["api_name"], biz_content=request["biz_content"], **request.get("params", {})
    )
    return {"order_str": order_str}


@command("alipay-sign-data")
def alipay_sign_data(request):
    """``AliPay.sign_data`` over exactly the given parameters: the orderStr the SDK makes of them."""
    return {"order_str": _alipay(request).sign_data(dict(request["params"]))}


@command("alipay-verify-orderstr")
def alipay_verify_orderstr(request):
    """Verify an orderStr with the SDK's key and its own signed-text rule (``sign_data``'s: all but ``sign``).

    ``valid`` is the SDK's ``_verify`` over the text ``sign_data`` would sign. ``verify_api`` is the public
    ``AliPay.verify(data_without_sign, sign)``, which pops ``sign_type`` first: it is the notification rule.
    """
    alipay = _alipay(request)
    data = dict(urllib.parse.parse_qsl(request["order_str"], keep_blank_values=True))
    signature = data.pop("sign")
    signed_text = "&".join(f"{key}={value}" for key, value in alipay._ordered_data(dict(data)))
    try:
        verify_api = alipay.verify(dict(data), signature)
    except Exception as error:
        verify_api = f"{type(error).__name__}: {error}"
    return {"valid": alipay._verify(signed_text, signature), "verify_api": verify_api}


@command("alipay-sign-notification")
def alipay_sign_notification(request):
    """Sign an async notification as the gateway does: every parameter but ``sign``/``sign_type``, sorted."""
    alipay = _alipay(request)
    params = dict(request["params"])
    unsigned = {key: value for key, value in params.items() if key not in ("sign", "sign_type")}
    signed_text = "&".join(f"{key}={value}" for key, value in alipay._ordered_data(unsigned))
    return {**params, "sign": alipay._sign(signed_text)}


@command("alipay-verify-notification")
def alipay_verify_notification(request):
    """``AliPay.verify(data_without_sign, sign)``: the SDK's own check of an async notification."""
    data = dict(request["params"])
    signature = data.pop("sign")
    return {"valid": _alipay(request).verify(data, signature)}


@command("alipay-gateway-call")
def alipay_gateway_call(request):
    """``AliPay.<api>(**kwargs)`` against ``gateway_url``: the SDK's own request (a signed GET), HTTP and check
    of the answer's signature. Returns the response object the SDK verified, or its error."""
    alipay = _alipay(request)
    alipay._gateway = request["gateway_url"]
    try:
        response = getattr(alipay, request["api"])(**request["kwargs"])
    except Exception as error:  # AliPayValidationError (a bad signature) and AliPayException (unsigned)
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    return {"ok": True, "response": response}


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.stderr.write(f"usage: peer.py {{{','.join(sorted(COMMANDS))}}} < request.json\n")
        return 2
    result = COMMANDS[sys.argv[1]](json.load(sys.stdin))
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
