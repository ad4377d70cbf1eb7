"""The baselines: what any order create, or any notification, must do at least, with none of the platform's logic.

Order create (``BaselineOrderApi``): validate the JSON, insert the order, sign one ``payments/pay`` request
(the same wire request the platform sends), POST it to the sandbox through one httpx client per process,
verify the answer's signature, insert the payment, answer 201. No authentication, tenancy, throttling,
events or row locks.

Notification (``baseline_notify``): verify the RSA-SHA256 signature over the raw body with the wallet's
public key, insert one row, queue one Celery task (``tasks.notification_done``: one UPDATE) and answer the
plain ACK. No inbox bookkeeping, Request-Time check, client lookup, deduplication or signed ACK.
"""

from __future__ import annotations

import datetime
import json
import os
import uuid
from functools import cache

import httpx
from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework import parsers, permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.superapps.client import keys, signing

from .models import BaselineNotification, BaselineOrder, BaselinePayment
from .tasks import notification_done

CLIENT_ID = "bench-baseline"
PAY_PATH = "/sandbox/v2/payments/pay"


@cache
def _private_key():
    """Loaded once per process: parsing a PEM private key costs ~60 ms."""
    with open(os.environ["BENCH_BASELINE_KEY_FILE"]) as pem:
        return keys.load_private_key(pem.read())


@cache
def _wallet_public_key():
    with open(os.environ["BENCH_WALLET_PUBLIC_KEY_FILE"]) as pem:
        return keys.load_public_key(pem.read())


@cache
def _http() -> httpx.Client:
    """One client (and connection pool) per worker process, with the platform's timeouts."""
    return httpx.Client(timeout=httpx.Timeout(10.0, connect=3.0), follow_redirects=False)


class BaselineOrderInput(serializers.Serializer):
    mini_program = serializers.CharField(max_length=64)
    amount = serializers.IntegerField(min_value=1)
    currency = serializers.CharField(min_length=3, max_length=3)
    description = serializers.CharField(max_length=256)


class BaselineOrderApi(APIView):
    authentication_classes = ()
    permission_classes = (permissions.AllowAny,)
    throttle_classes = ()
    parser_classes = (parsers.JSONParser,)

    def post(self, request):
        data = BaselineOrderInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        order = BaselineOrder.objects.create(
            description=fields["description"], amount=fields["amount"], currency=fields["currency"]
        )
        amount = {"currency": fields["currency"], "value": str(fields["amount"])}
        payment_request_id = f"pr_{uuid.uuid4().hex}"
        body = {
            "appId": fields["mini_program"],
            "productCode": "CASHIER_PAYMENT",
            "paymentRequestId": payment_request_id,
            "paymentAmount": amount,
            "order": {
                "referenceOrderId": f"bo_{order.pk}",
                "orderDescription": fields["description"],
                "orderAmount": amount,
                "merchant": {"merchantDisplayName": "Bench baseline"},
            },
            "paymentNotifyUrl": f"{settings.PUBLIC_BASE_URL}/callbacks/bench/notify",
            "paymentExpiryTime": (timezone.now() + datetime.timedelta(minutes=30)).isoformat(timespec="seconds"),
        }
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = signing.now_timestamp()
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "Client-Id": CLIENT_ID,
            "Request-Time": timestamp,
            "Signature": signing.sign(
                _private_key(), path=PAY_PATH, client_id=CLIENT_ID, timestamp=timestamp, body=raw
            ),
        }
        answer = _http().post(os.environ["BENCH_SANDBOX_URL"] + PAY_PATH, content=raw, headers=headers)
        verified = signing.verify(
            _wallet_public_key(),
            path=PAY_PATH,
            client_id=CLIENT_ID,
            timestamp=answer.headers.get("response-time", ""),
            body=answer.content,
            signature_header=answer.headers.get("signature", ""),
        )
        reply = json.loads(answer.content)
        if answer.status_code != 200 or not verified or reply["result"]["resultStatus"] != "A":
            return Response({"error": reply.get("result"), "verified": verified}, status=status.HTTP_502_BAD_GATEWAY)
        payment_url = reply["redirectActionForm"]["redirectionUrl"]
        BaselinePayment.objects.create(
            order=order,
            payment_request_id=payment_request_id,
            wallet_payment_id=reply["paymentId"],
            payment_url=payment_url,
        )
        return Response(
            {"id": f"bo_{order.pk}", "status": "pending", "trade_pay": {"paymentUrl": payment_url}},
            status=status.HTTP_201_CREATED,
        )


ACK = b'{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}}'


@csrf_exempt
@require_POST
def baseline_notify(request):
    if not signing.verify(
        _wallet_public_key(),
        path=request.path,
        client_id=request.headers.get("Client-Id", ""),
        timestamp=request.headers.get("Request-Time", ""),
        body=request.body,
        signature_header=request.headers.get("Signature", ""),
    ):
        return HttpResponse(b'{"result":{"resultStatus":"F"}}', status=401, content_type="application/json")
    row = BaselineNotification.objects.create(body=request.body)  # autocommit: committed before it is queued
    notification_done.delay(row.pk)
    return HttpResponse(ACK, content_type="application/json; charset=UTF-8")
