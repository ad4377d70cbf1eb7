"""Inbound super-app notifications: verification and the signed acknowledgement."""

from __future__ import annotations

import dataclasses
import json
import logging

from apps.core import crypto
from apps.merchants.models import WalletCredential
from apps.superapps.client import keys, signing
from apps.superapps.client.messages import NOTIFICATION_ACK, MessageError, PaymentNotification
from apps.superapps.models import SuperApp

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Acknowledgement:
    status: int
    body: bytes
    headers: dict[str, str]


def _reject(code: str, message: str, *, status: int) -> Acknowledgement:
    body = {"result": {"resultCode": code, "resultStatus": "F", "resultMessage": message}}
    return Acknowledgement(status=status, body=json.dumps(body).encode(), headers={})


def payment_notification_receive(
    *, super_app: SuperApp, path: str, headers: dict[str, str], body: bytes
) -> Acknowledgement:
    """Verify a ``notifyPayment`` over its raw bytes and answer with the signed ACK the protocol wants.

    A notification that is not the wallet's (no or bad signature, unknown client id) or not readable is
    refused with ``F`` and changes nothing.
    """
    client_id = headers.get("client-id", "")
    request_time = headers.get("request-time", "")
    verified = signing.verify(
        keys.load_public_key(super_app.wallet_public_key_pem),
        path=path,
        client_id=client_id,
        timestamp=request_time,
        body=body,
        signature_header=headers.get("signature", ""),
    )
    if not verified:
        logger.warning("notifyPayment from %s refused: signature does not verify", super_app.code)
        return _reject("INVALID_SIGNATURE", "signature does not verify", status=401)
    credential = (
        WalletCredential.objects.unscoped()  # the notification names its client; that establishes the tenant
        .filter(super_app=super_app, client_id=client_id)
        .first()
    )
    if credential is None:
        return _reject("INVALID_CLIENT", "unknown client id", status=400)
    try:
        notification = PaymentNotification.parse(json.loads(body))
    except (ValueError, MessageError) as error:
        return _reject("PARAM_ILLEGAL", str(error), status=400)
    logger.info(
        "notifyPayment received: super_app=%s client=%s paymentId=%s paymentRequestId=%s succeeded=%s amount=%s",
        super_app.code,
        client_id,
        notification.payment_id,
        notification.payment_request_id,
        notification.succeeded,
        notification.amount,
    )
    return _signed_ack(credential, path=path)


def _signed_ack(credential: WalletCredential, *, path: str) -> Acknowledgement:
    body = json.dumps(NOTIFICATION_ACK, separators=(",", ":")).encode()
    response_time = signing.now_timestamp()
    private_key_pem = crypto.decrypt(credential.private_key_ciphertext, context=credential.encryption_context)
    signature = signing.sign(
        keys.load_private_key(private_key_pem.decode()),
        path=path,
        client_id=credential.client_id,
        timestamp=response_time,
        body=body,
        key_version=credential.key_version,
    )
    return Acknowledgement(
        status=200,
        body=body,
        headers={"Client-Id": credential.client_id, "Response-Time": response_time, "Signature": signature},
    )
