"""Writes for ISVs, merchants, wallet credentials, business licenses and their verification."""

import datetime
import logging

from django.db import IntegrityError, transaction
from django.utils import timezone
from ulid import ULID

from apps.core.errors import ApplicationError, ConflictError
from apps.core.services import claim_due
from apps.superapps.client import keys, messages
from apps.superapps.client.errors import WalletBusinessFailure, WalletUnknownOutcome
from apps.superapps.models import SuperApp

from . import selectors, transitions
from .models import (
    BusinessLicense,
    Isv,
    Merchant,
    Registration,
    RegistrationEvent,
    RegistrationStatus,
    WalletCredential,
)

logger = logging.getLogger(__name__)


def isv_create(*, name: str) -> Isv:
    """Register an ISV (platform operators only). Names are unique platform-wide."""
    try:
        with transaction.atomic():
            return Isv.objects.create(name=name)
    except IntegrityError:
        raise ConflictError("merchants.isv_name_taken", f"An ISV named {name!r} exists already.", attr="name") from None


def merchant_create(*, isv: Isv, name: str) -> Merchant:
    """Onboard a merchant under ``isv``. Names are unique within the ISV."""
    try:
        with transaction.atomic():
            return Merchant.objects.create(isv=isv, name=name)
    except IntegrityError:
        raise ConflictError(
            "merchants.merchant_name_taken", f"This ISV already has a merchant named {name!r}.", attr="name"
        ) from None


def wallet_credential_create(
    *,
    isv: Isv,
    merchant: Merchant | None = None,
    super_app: SuperApp,
    client_id: str,
    partner_id: str = "",
    classic_app_id: str = "",
    key_version: str = "1",
    private_key_pem: str | None = None,
) -> WalletCredential:
    """Credentials of ``isv`` (default for its merchants) or of ``merchant`` at ``super_app``.

    Without ``private_key_pem`` a new RSA-2048 pair is generated; either way only the public key is kept in
    clear. Raises ``merchants.credential_exists`` when the owner has one for this super app already and
    ``merchants.invalid_private_key`` for a key that does not parse.
    """
    if private_key_pem is None:
        private_key_pem, public_key_pem = keys.generate_key_pair()
    else:
        try:
            private_key = keys.load_private_key(private_key_pem)
            if private_key.key_size < 2048:
                raise ValueError("RSA keys must have at least 2048 bits")
            public_key_pem = keys.public_pem_of(private_key)
        except (ValueError, TypeError):  # TypeError: an encrypted PEM, which we cannot use
            raise ApplicationError(
                "merchants.invalid_private_key",
                "The private key must be an unencrypted RSA key of at least 2048 bits, in PEM.",
                attr="private_key",
            ) from None
    credential = WalletCredential(
        isv=isv,
        merchant=merchant,
        super_app=super_app,
        client_id=client_id,
        partner_id=partner_id,
        classic_app_id=classic_app_id,
        key_version=key_version,
        public_key_pem=public_key_pem,
    )
    credential.validate_for_save(exclude=("private_key_ciphertext",))
    credential.seal("private_key_ciphertext", private_key_pem.encode())
    try:
        with transaction.atomic():
            credential.save()
    except IntegrityError:
        raise ConflictError(
            "merchants.credential_exists",
            "These credentials exist already (one per owner and super app; client ids and classic app ids are "
            "unique per super app).",
        ) from None
    return credential


# --- business licenses and their verification ------------------------------------------------------

_LICENSE_LOCKED = frozenset(
    {RegistrationStatus.SUBMITTED, RegistrationStatus.UNDER_REVIEW, RegistrationStatus.VERIFIED}
)
_POLL_FIRST_SECONDS, _POLL_MAX_SECONDS = 30, 3600


@transaction.atomic
def business_license_save(*, merchant: Merchant, fields: dict, document=None) -> BusinessLicense:
    """Create or replace the merchant's business license (``fields`` as in ``LICENSE_SUBMITTED_FIELDS``).

    A license that a super app is reviewing or has verified is locked (``merchants.license_locked``): what a
    wallet verified must stay what it verified. Every field is validated by the model (``validation.*``).
    """
    # Serialised per merchant with registration_submit: the license sent for review is the one on file.
    Merchant.objects.unscoped().select_for_update().filter(pk=merchant.pk).first()
    existing = selectors.business_license_of(merchant=merchant)
    if existing is not None and selectors.license_is_locked(merchant=merchant):
        raise ConflictError(
            "merchants.license_locked", "A super app is reviewing or has verified the license; it cannot change now."
        )
    business_license = existing or BusinessLicense(isv_id=merchant.isv_id, merchant=merchant)
    for name, value in fields.items():
        setattr(business_license, name, value)
    if document is not None:
        business_license.document = document
    business_license.validate_for_save()
    business_license.save()
    return business_license


@transaction.atomic
def registration_transition(
    *,
    registration: Registration,
    to: str,
    source: str,
    actor: str = "",
    reason: str = "",
    expected_request_id: str | None = None,
    **changes,
) -> Registration:
    """Move ``registration`` to ``to`` under a row lock, as the transition table allows, with an event.

    Already being in ``to`` is success and records nothing. With ``expected_request_id`` (a wallet's word
    about one submission), a registration resubmitted since under another id is left alone: a stale
    answer never decides a newer submission. ``changes`` are further fields to set. Raises
    ``merchants.invalid_registration_transition`` for a move the table does not allow.
    """
    locked = Registration.objects.unscoped().select_for_update().get(pk=registration.pk)
    stale = expected_request_id is not None and locked.wallet_request_id != expected_request_id
    if locked.status == to or stale:
        return locked
    if to not in transitions.REGISTRATION[locked.status]:
        raise ConflictError(
            "merchants.invalid_registration_transition",
            f"A registration cannot go from {locked.status} to {to}.",
        )
    event = RegistrationEvent(
        isv_id=locked.isv_id,
        merchant_id=locked.merchant_id,
        registration=locked,
        from_status=locked.status,
        to_status=to,
        source=source,
        actor=actor,
        reason=reason[:500],
    )
    if to == RegistrationStatus.SUBMITTED:
        event.license_snapshot = changes.pop("license_snapshot")
        previous = locked.events.filter(to_status=RegistrationStatus.SUBMITTED).order_by("-created_at").first()
        before = previous.license_snapshot if previous else {}
        event.license_changes = {
            field: [before.get(field), value]
            for field, value in event.license_snapshot.items()
            if before.get(field) != value
        }
    locked.status = to
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.save(update_fields=["status", "updated_at", *changes])
    event.save()
    if to in REGISTRATION_WEBHOOKS:
        _announce_registration(locked)
    return locked


# The registration outcomes a merchant's server is told about, as webhook event types.
REGISTRATION_WEBHOOKS = {
    RegistrationStatus.VERIFIED: "registration.verified",
    RegistrationStatus.REJECTED: "registration.rejected",
    RegistrationStatus.EXPIRED: "registration.expired",
}


def _announce_registration(registration: Registration) -> None:
    """The webhook event of a decided registration, in the transaction of the decision. Webhooks sit above
    this app (their deliveries go to mini programs), hence the import at call time: the one exception to the
    import direction, kept to this function."""
    from apps.webhooks.services import webhook_event_record

    webhook_event_record(
        isv_id=registration.isv_id,
        merchant_id=registration.merchant_id,
        type=REGISTRATION_WEBHOOKS[registration.status],
        data={
            "object": "registration",
            "id": registration.public_id,
            "super_app": registration.super_app.code,
            "status": registration.status,
            "rejection_reason": registration.rejection_reason,
        },
    )


def registration_submit(*, merchant: Merchant, super_app: SuperApp, source: str, actor: str = "") -> Registration:
    """Submit the merchant's business license to ``super_app`` for verification (or resubmit it).

    The registration and its wallet request id are stored before the wallet is called, so a retry reuses
    them. ``S`` → under review; ``F`` → rejected with the wallet's reason; an unknown outcome stays
    submitted and the poller asks again. Raises ``merchants.license_missing``, ``merchants.license_expired``,
    ``merchants.no_wallet_credential`` and ``merchants.registration_in_progress``.
    """
    with transaction.atomic():
        # Serialised per merchant with business_license_save: what is snapshotted is what is on file.
        Merchant.objects.unscoped().select_for_update().filter(pk=merchant.pk).first()
        business_license = selectors.business_license_of(merchant=merchant)
        if business_license is None:
            raise ApplicationError("merchants.license_missing", "Upload the business license before submitting it.")
        if business_license.expiry_date <= timezone.localdate():
            raise ApplicationError(
                "merchants.license_expired", "The business license has expired; upload the renewed one."
            )
        credential = selectors.wallet_credential_for(merchant=merchant, super_app=super_app)
        registration, _ = Registration.objects.unscoped().get_or_create(
            merchant=merchant, super_app=super_app, defaults={"isv_id": merchant.isv_id}
        )
        if RegistrationStatus.SUBMITTED not in transitions.REGISTRATION[registration.status]:
            raise ConflictError(
                "merchants.registration_in_progress",
                f"The registration at {super_app.name} is {registration.status}; it cannot be submitted again now.",
            )
        now = timezone.now()
        registration = registration_transition(
            registration=registration,
            to=RegistrationStatus.SUBMITTED,
            source=source,
            actor=actor,
            license_snapshot=business_license.snapshot(),
            wallet_request_id=f"reg_{str(ULID()).lower()}",
            submitted_at=now,
            decided_at=None,
            rejection_reason="",
            next_poll_at=now + datetime.timedelta(seconds=_POLL_FIRST_SECONDS),
        )
    return _registration_send(registration=registration, credential=credential, business_license=business_license)


def _registration_send(
    *, registration: Registration, credential: WalletCredential, business_license: BusinessLicense
) -> Registration:
    request = messages.RegistrationRequest(
        registration_request_id=registration.wallet_request_id,
        notify_url=registration.super_app.registration_notify_url(),
        reference_merchant_id=registration.merchant.public_id,
        merchant_display_name=registration.merchant.name,
        legal_name=business_license.legal_name,
        registration_no=business_license.registration_no,
        registration_type=business_license.registration_type,
        business_type=business_license.business_type,
        effective_date=business_license.effective_date.isoformat(),
        expiry_date=business_license.expiry_date.isoformat(),
        address={
            "region": business_license.address_country,
            "city": business_license.address_city,
            "address1": business_license.address_line,
        },
        attachments=[{"attachmentType": "BUSINESS_LICENSE", "attachmentName": business_license.document.name}],
    )
    try:
        selectors.wallet_client_for(credential=credential).register_merchant(request)
    except WalletBusinessFailure as failure:
        return registration_transition(
            registration=registration,
            to=RegistrationStatus.REJECTED,
            source="wallet_response",
            reason=f"{failure.result_code}: {failure.result_message}",
            rejection_reason=f"{failure.result_code}: {failure.result_message}"[:500],
            decided_at=timezone.now(),
            next_poll_at=None,
        )
    except WalletUnknownOutcome as unknown:
        logger.warning("registration %s: outcome unknown (%s); polling", registration.public_id, unknown.reason)
        return registration
    return registration_transition(
        registration=registration, to=RegistrationStatus.UNDER_REVIEW, source="wallet_response"
    )


def registration_apply_result(
    *, registration: Registration, result: messages.RegistrationResult, source: str, request_id: str
) -> Registration:
    """Apply what the super app says of the submission ``request_id`` (notification or inquiry).

    Repeating it changes nothing; an answer about a superseded submission changes nothing either.
    """
    if result.status is messages.RegistrationStatus.COMPLETED:
        return registration_transition(
            registration=registration,
            to=RegistrationStatus.VERIFIED,
            source=source,
            expected_request_id=request_id,
            decided_at=timezone.now(),
            next_poll_at=None,
        )
    if result.status is messages.RegistrationStatus.REJECTED:
        reason = result.reject_reason or "rejected without a reason"
        return registration_transition(
            registration=registration,
            to=RegistrationStatus.REJECTED,
            source=source,
            expected_request_id=request_id,
            reason=reason,
            rejection_reason=reason[:500],
            decided_at=timezone.now(),
            next_poll_at=None,
        )
    if registration.status == RegistrationStatus.SUBMITTED:
        return registration_transition(
            registration=registration,
            to=RegistrationStatus.UNDER_REVIEW,
            source=source,
            expected_request_id=request_id,
        )
    return registration


def _claim_due_registrations(*, now: datetime.datetime, limit: int) -> list[Registration]:
    def next_poll(registration: Registration) -> datetime.datetime:
        waited = (now - (registration.submitted_at or now)).total_seconds()
        return now + datetime.timedelta(seconds=min(max(waited, _POLL_FIRST_SECONDS), _POLL_MAX_SECONDS))

    return claim_due(
        Registration.objects.unscoped()  # batch work across tenants: each row is then handled on its own
        .filter(status__in=[RegistrationStatus.SUBMITTED, RegistrationStatus.UNDER_REVIEW])
        .select_related("merchant", "super_app"),
        field="next_poll_at",
        now=now,
        limit=limit,
        next_at=next_poll,
    )


def registrations_poll(*, now: datetime.datetime | None = None, limit: int = 100) -> int:
    """Ask the super apps about registrations still waiting for a decision whose poll is due.

    A submission whose answer was lost is sent again with the same request id (idempotent at the wallet).
    Backs off per registration, up to an hour. One registration's trouble never stops the others.
    Returns how many were asked about.
    """
    asked = 0
    for registration in _claim_due_registrations(now=now or timezone.now(), limit=limit):
        asked += 1
        try:
            _registration_poll_one(registration)
        except (ApplicationError, WalletUnknownOutcome) as problem:
            logger.warning("registration %s: poll inconclusive (%s)", registration.public_id, problem)
    return asked


def _registration_poll_one(registration: Registration) -> None:
    credential = selectors.wallet_credential_for(merchant=registration.merchant, super_app=registration.super_app)
    client = selectors.wallet_client_for(credential=credential)
    try:
        result = client.inquire_registration(registration_request_id=registration.wallet_request_id)
    except WalletBusinessFailure as failure:
        if failure.result_code == "RECORD_NOT_FOUND" and registration.status == RegistrationStatus.SUBMITTED:
            _registration_send(
                registration=registration,
                credential=credential,
                business_license=selectors.business_license_of(merchant=registration.merchant),
            )
        return
    registration_apply_result(
        registration=registration, result=result, source="wallet_poll", request_id=registration.wallet_request_id
    )


def registrations_expire(*, today: datetime.date | None = None) -> int:
    """Verified registrations whose license has expired become ``expired``: payments stop until renewal."""
    today = today or timezone.localdate()
    expired = Registration.objects.unscoped().filter(  # batch work across tenants
        status=RegistrationStatus.VERIFIED, merchant__business_license__expiry_date__lt=today
    )
    count = 0
    for registration in expired:
        registration_transition(
            registration=registration, to=RegistrationStatus.EXPIRED, source="system", reason="business license expired"
        )
        count += 1
    return count
