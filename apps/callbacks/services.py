"""Inbound super-app notifications: verification, the effect, and the signed acknowledgement.

Each handler verifies the wallet's signature over the raw bytes, finds the client the notification names
(that establishes the tenant), applies the notification through the owning app's service, and answers with
the ACK the protocol wants, signed with the client's key. Anything unverifiable or unreadable is refused
with ``F`` and changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable

from apps.core.errors import ConflictError
from apps.core.tenancy import Principal
from apps.merchants import services as merchant_services
from apps.merchants.models import Registration, WalletCredential
from apps.superapps.client import keys, signing
from apps.superapps.client.messages import (
    NOTIFICATION_ACK,
    MessageError,
    PaymentNotification,
    RegistrationResult,
)
from apps.superapps.models import SuperApp

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Acknowledgement:
    status: int
    body: bytes
    headers: dict[str, str]


class Refused(Exception):
    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.ack = Acknowledgement(
            status=status,
            body=json.dumps({"result": {"resultCode": code, "resultStatus": "F", "resultMessage": message}}).encode(),
            headers={},
        )


def receive(
    *,
    super_app: SuperApp,
    path: str,
    headers: dict[str, str],
    body: bytes,
    apply: Callable[[WalletCredential, dict], None],
    kind: str,
) -> Acknowledgement:
    """Verify, apply and acknowledge one notification of ``kind``."""
    client_id = headers.get("client-id", "")
    try:
        if not signing.verify(
            keys.load_public_key(super_app.wallet_public_key_pem),
            path=path,
            client_id=client_id,
            timestamp=headers.get("request-time", ""),
            body=body,
            signature_header=headers.get("signature", ""),
        ):
            raise Refused("INVALID_SIGNATURE", "signature does not verify", status=401)
        credential = (
            WalletCredential.objects.unscoped()  # the notification names its client; that establishes the tenant
            .filter(super_app=super_app, client_id=client_id)
            .first()
        )
        if credential is None:
            raise Refused("INVALID_CLIENT", "unknown client id")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            raise Refused("PARAM_ILLEGAL", "the body is not JSON") from None
        if not isinstance(payload, dict):
            raise Refused("PARAM_ILLEGAL", "the body is not a JSON object")
        apply(credential, payload)
    except Refused as refused:
        logger.warning("%s from %s refused: %s", kind, super_app.code, refused)
        return refused.ack
    return _signed_ack(credential, path=path)


def apply_payment_notification(credential: WalletCredential, payload: dict) -> None:
    """Logged for now; the payments app applies it once orders exist."""
    try:
        notification = PaymentNotification.parse(payload)
    except MessageError as error:
        raise Refused("PARAM_ILLEGAL", str(error)) from None
    logger.info(
        "notifyPayment received: super_app=%s client=%s paymentId=%s paymentRequestId=%s outcome=%s amount=%s",
        credential.super_app.code,
        credential.client_id,
        notification.payment_id,
        notification.payment_request_id,
        notification.outcome.value,
        notification.amount,
    )


def apply_registration_notification(credential: WalletCredential, payload: dict) -> None:
    try:
        result = RegistrationResult.parse(payload)
    except MessageError as error:
        raise Refused("PARAM_ILLEGAL", str(error)) from None
    owner = Principal.system(isv_id=credential.isv_id, merchant_id=credential.merchant_id)
    registration = (
        Registration.objects.visible_to(owner)
        .filter(super_app=credential.super_app, wallet_request_id=result.registration_request_id)
        .first()
        if result.registration_request_id
        else None
    )
    if registration is None:
        # A superseded submission (the merchant resubmitted since) or never ours: nothing to apply, and a
        # refusal would only make the wallet retry for a day.
        logger.info("notifyRegistrationStatus for an unknown request id %s ignored", result.registration_request_id)
        return
    try:
        merchant_services.registration_apply_result(
            registration=registration,
            result=result,
            source="wallet_notification",
            request_id=result.registration_request_id,
        )
    except ConflictError as conflict:
        # The registration has moved on (e.g. verified, then a late contradicting message): keep the state
        # the table allows, log why, and acknowledge so the wallet stops retrying.
        logger.warning("notifyRegistrationStatus for %s not applied: %s", registration.public_id, conflict.message)


def _signed_ack(credential: WalletCredential, *, path: str) -> Acknowledgement:
    body = json.dumps(NOTIFICATION_ACK, separators=(",", ":")).encode()
    response_time = signing.now_timestamp()
    signature = signing.sign(
        keys.load_private_key(credential.unseal("private_key_ciphertext").decode()),
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
