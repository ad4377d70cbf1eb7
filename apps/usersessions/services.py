"""Opening user sessions (auth code → ``applyToken`` → session token) and checking them on each request."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.core.errors import ApplicationError, AuthenticationError, UpstreamUnavailableError
from apps.core.tenancy import Principal
from apps.miniprograms.models import MiniProgram, MiniProgramStatus
from apps.miniprograms.selectors import wallet_client_of
from apps.superapps.client import messages
from apps.superapps.client.errors import WalletBusinessFailure, WalletUnknownOutcome

from .models import UserSession, WalletUser

TOKEN_PREFIX = "ust_"  # noqa: S105 - a visible marker, not a secret


@dataclasses.dataclass(frozen=True)
class OpenedSession:
    session: UserSession
    token: str  # shown to the mini program once, never stored


def _hash(token: str) -> str:
    # Tokens carry 256 random bits: a fast hash is as strong as a slow one and keeps every request cheap.
    return hashlib.sha256(token.encode()).hexdigest()


def session_start(*, mini_program: MiniProgram, auth_code: str) -> OpenedSession:
    """Exchange a user's auth code for a session in ``mini_program``.

    The super app's ``applyToken`` names the user (``customerId``) and grants an access token, which is
    kept encrypted. Raises ``miniprograms.suspended``, ``merchants.no_wallet_credential``,
    ``sessions.auth_code_invalid`` (401: the wallet refused the code) and ``sessions.wallet_unavailable``
    (503: no usable answer; get a new auth code and retry).
    """
    if mini_program.status == MiniProgramStatus.SUSPENDED:
        raise ApplicationError("miniprograms.suspended", f"The mini program {mini_program.name!r} is suspended.")
    client = wallet_client_of(mini_program)
    try:
        grant = client.apply_token(app_id=mini_program.app_id, auth_code=auth_code)
    except WalletBusinessFailure as failure:
        raise AuthenticationError(
            "sessions.auth_code_invalid",
            f"The super app refused the auth code ({failure.result_code}); get a new one with my.getAuthCode.",
        ) from None
    except WalletUnknownOutcome:
        raise UpstreamUnavailableError(
            "sessions.wallet_unavailable", "The super app did not answer; get a new auth code and retry."
        ) from None
    return session_open(mini_program=mini_program, grant=grant)


@transaction.atomic
def session_open(*, mini_program: MiniProgram, grant: messages.AccessToken) -> OpenedSession:
    """A session for the user the super app granted access for (``applyToken``'s answer)."""
    lookup = {"merchant_id": mini_program.merchant_id, "mini_program": mini_program, "customer_id": grant.customer_id}
    try:
        with transaction.atomic():  # a savepoint: two first sessions of one user may race to create the row
            WalletUser.objects.unscoped().get_or_create(**lookup, defaults={"isv_id": mini_program.isv_id})
    except IntegrityError:
        pass  # the other one created it
    wallet_user = WalletUser.objects.unscoped().select_for_update().get(**lookup)
    wallet_user.seal("access_token_ciphertext", grant.access_token.encode())
    wallet_user.seal("refresh_token_ciphertext", (grant.refresh_token or "").encode())
    wallet_user.access_token_expires_at = (
        parse_datetime(grant.access_token_expiry_time) if grant.access_token_expiry_time else None
    )
    wallet_user.save()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session = UserSession.objects.create(
        isv_id=mini_program.isv_id,
        merchant_id=mini_program.merchant_id,
        mini_program=mini_program,
        wallet_user=wallet_user,
        token_hash=_hash(token),
        expires_at=timezone.now() + datetime.timedelta(seconds=settings.USER_SESSION_TTL_SECONDS),
    )
    return OpenedSession(session=session, token=token)


def session_authenticate(*, token: str) -> Principal:
    """The principal of a live session token. Raises ``auth.invalid_session`` or ``auth.session_expired``."""
    session = UserSession.objects.unscoped().filter(token_hash=_hash(token)).first()
    if session is None:
        raise AuthenticationError("auth.invalid_session", "The session token is not valid.")
    if session.expires_at <= timezone.now():
        raise AuthenticationError("auth.session_expired", "The session has expired; start a new one.")
    return Principal.mini_program_user(
        isv_id=session.isv_id,
        merchant_id=session.merchant_id,
        mini_program_id=session.mini_program_id,
        wallet_user_id=session.wallet_user_id,
        session_id=session.pk,
    )


def sessions_purge_expired(*, batch_size: int = 1000) -> int:
    """Delete sessions that expired a day ago or more; returns how many."""
    cutoff = timezone.now() - datetime.timedelta(days=1)
    deleted = 0
    while True:
        batch = list(
            UserSession.objects.unscoped().filter(expires_at__lt=cutoff).values_list("pk", flat=True)[:batch_size]
        )
        if not batch:
            return deleted
        deleted += UserSession.objects.unscoped().filter(pk__in=batch).delete()[0]
