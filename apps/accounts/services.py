"""Writes for users, memberships and API keys, the API-key check every request goes through, and the audit
log of what staff do."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import re
import secrets
import string

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils import timezone

from apps.core.crypto import EncryptedFields
from apps.core.errors import ApplicationError, AuthenticationError, NotFoundError
from apps.core.ids import is_public_id
from apps.core.tenancy import Principal, PrincipalKind, Role, TenantOwnedModel
from apps.merchants.models import Isv, Merchant

from .models import ApiKey, AuditEntry, Membership, User

_ALPHABET = string.ascii_letters + string.digits
_ISV_KEY_KIND, _MERCHANT_KEY_KIND = "isk", "msk"
_KEY_ID_LENGTH, _KEY_SECRET_LENGTH = 8, 32
_KEY_PATTERN = re.compile(
    rf"^(?:{_ISV_KEY_KIND}|{_MERCHANT_KEY_KIND})_[A-Za-z0-9]{{{_KEY_ID_LENGTH + _KEY_SECRET_LENGTH}}}$"
)
_PREFIX_LENGTH = len(_ISV_KEY_KIND) + 1 + _KEY_ID_LENGTH


@dataclasses.dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    secret: str  # shown to its owner once, never stored


def _hash(secret: str) -> str:
    # Keys carry ~238 random bits, so a fast hash is as strong as a slow one and keeps auth cheap.
    return hashlib.sha256(secret.encode()).hexdigest()


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def api_key_issue(*, api_key: ApiKey, issued_by: Principal) -> str:
    """Give an unsaved ``ApiKey`` its secret and save it; returns the secret, which is not kept.

    A key belongs to the tenant its issuer acts for (a merchant, or the ISV itself); only operators choose
    another owner. Raises ``validation.merchant_of_other_isv`` or ``validation.in_past`` (expiry).
    """
    if not issued_by.is_operator:
        api_key.isv_id, api_key.merchant_id = issued_by.isv_id, issued_by.merchant_id
    api_key.validate_for_save(exclude=("prefix", "secret_hash"))
    kind = _MERCHANT_KEY_KIND if api_key.merchant_id else _ISV_KEY_KIND
    secret = f"{kind}_{_random(_KEY_ID_LENGTH)}{_random(_KEY_SECRET_LENGTH)}"
    api_key.prefix = secret[:_PREFIX_LENGTH]
    api_key.secret_hash = _hash(secret)
    api_key.save()
    return secret


def api_key_create_for(
    *, principal: Principal, name: str, expires_at: datetime.datetime | None = None, created_by: User | None = None
) -> IssuedApiKey:
    """A new key for the tenant ``principal`` acts for."""
    api_key = ApiKey(name=name, expires_at=expires_at, created_by=created_by)
    return IssuedApiKey(api_key=api_key, secret=api_key_issue(api_key=api_key, issued_by=principal))


def api_key_create(
    *,
    isv: Isv,
    merchant: Merchant | None = None,
    name: str,
    expires_at: datetime.datetime | None = None,
    created_by: User | None = None,
) -> IssuedApiKey:
    """A new key for ``isv`` (ISV-level) or one of its merchants, issued by the platform itself."""
    api_key = ApiKey(isv=isv, merchant=merchant, name=name, expires_at=expires_at, created_by=created_by)
    return IssuedApiKey(api_key=api_key, secret=api_key_issue(api_key=api_key, issued_by=Principal.operator()))


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key at once. Revoking a revoked key is a no-op that keeps the first revocation time."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        ApiKey.objects.unscoped().filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=api_key.revoked_at)
    return api_key


def api_key_authenticate(*, secret: str, merchant_public_id: str | None) -> Principal:
    """The principal a presented key acts as.

    An ISV key acts ISV-wide, or for the merchant named by ``merchant_public_id`` when that merchant is
    its own (another ISV's merchant is ``merchants.not_found``). Raises ``auth.invalid_api_key``,
    ``auth.api_key_revoked`` or ``auth.api_key_expired``. Records the last use at a coarse resolution.
    """
    if not _KEY_PATTERN.match(secret):
        raise AuthenticationError("auth.invalid_api_key", "The API key is not valid.")
    api_key = (
        ApiKey.objects.unscoped()  # authentication is what establishes the scope
        .select_related("merchant")
        .filter(prefix=secret[:_PREFIX_LENGTH])
        .first()
    )
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, _hash(secret)):
        raise AuthenticationError("auth.invalid_api_key", "The API key is not valid.")
    now = timezone.now()
    if api_key.revoked_at is not None:
        raise AuthenticationError("auth.api_key_revoked", "The API key was revoked; use another key.")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise AuthenticationError("auth.api_key_expired", "The API key has expired; create a new one.")

    resolution = datetime.timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if api_key.last_used_at is None or now - api_key.last_used_at >= resolution:
        ApiKey.objects.unscoped().filter(pk=api_key.pk).update(last_used_at=now)

    if api_key.merchant_id is not None:
        if merchant_public_id and merchant_public_id != api_key.merchant.public_id:
            raise NotFoundError("merchants.not_found", f"No merchant {merchant_public_id!r}.")
        return Principal(
            kind=PrincipalKind.MERCHANT_KEY,
            isv_id=api_key.isv_id,
            merchant_id=api_key.merchant_id,
            api_key_id=api_key.pk,
        )
    merchant_id = None
    if merchant_public_id:
        if is_public_id(merchant_public_id):
            merchant_id = (
                Merchant.objects.unscoped()
                .filter(isv_id=api_key.isv_id, public_id=merchant_public_id)
                .values_list("pk", flat=True)
                .first()
            )
        if merchant_id is None:
            raise NotFoundError("merchants.not_found", f"No merchant {merchant_public_id!r}.")
    return Principal(kind=PrincipalKind.ISV_KEY, isv_id=api_key.isv_id, merchant_id=merchant_id, api_key_id=api_key.pk)


def membership_set(
    *, user: User, isv: Isv, merchant: Merchant | None = None, role: Role, may_refund: bool = False
) -> Membership:
    """Give ``user`` exactly this one membership (replacing any other) and admin access."""
    Membership(user=user, isv=isv, merchant=merchant, role=role, may_refund=may_refund).validate_for_save(
        exclude=("user", "public_id")
    )
    if user.is_superuser:
        raise ApplicationError("accounts.operator_membership", "Platform operators have no tenant membership.")
    membership, _ = Membership.objects.unscoped().update_or_create(
        user=user, defaults={"isv": isv, "merchant": merchant, "role": role, "may_refund": may_refund}
    )
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return membership


_SECRET_NAME_PARTS = frozenset({"secret", "key", "token", "password", "private", "ciphertext", "hash"})
_CANNOT_HOLD_A_SECRET = (models.DateField, models.BooleanField, models.DurationField, models.ForeignKey)


def _is_secret(model: type[models.Model], field_name: str) -> bool:
    """Encrypted columns, and text named like a credential (a date or a flag named so holds none). A public
    key is dropped too, on purpose: a false alarm costs one field of history, a miss leaks a credential."""
    if issubclass(model, EncryptedFields) and field_name in model.encrypted_fields:
        return True
    try:
        field = model._meta.get_field(field_name)
    except FieldDoesNotExist:
        field = None
    if isinstance(field, _CANNOT_HOLD_A_SECRET):
        return False
    return not _SECRET_NAME_PARTS.isdisjoint(field_name.lower().split("_"))


def audit_record(
    *,
    actor: User,
    principal: Principal,
    target: models.Model,
    action: str,
    changes: dict[str, list] | None = None,
    message: str = "",
    ip_address: str | None = None,
) -> AuditEntry:
    """Append what ``actor`` did to ``target`` to the audit log, owned by the target's tenant.

    ``changes`` is ``{field: [before, after]}``; secret fields are dropped here, whoever the caller is. A
    target that is not tenant-owned (a super app, a user) gets an entry only operators see.
    """
    isv_id = merchant_id = None
    if isinstance(target, TenantOwnedModel):
        fields = target.tenant_fields
        isv_id = getattr(target, fields.isv)
        merchant_id = getattr(target, fields.merchant) if fields.merchant else None
    model = type(target)
    return AuditEntry.objects.create(
        isv_id=isv_id,
        merchant_id=merchant_id,
        actor=actor,
        actor_repr=actor.get_username(),
        actor_role="operator" if principal.is_operator else str(principal.role or ""),
        action=action,
        target_content_type=ContentType.objects.get_for_model(model, for_concrete_model=False),
        target_object_id=str(target.pk),
        target_repr=str(target)[:200],
        changes={field: values for field, values in (changes or {}).items() if not _is_secret(model, field)},
        message=message,
        ip_address=ip_address,
    )
