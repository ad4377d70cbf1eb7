"""Tenancy primitives: who is asking (``Principal``) and what they may read (``TenantScopedQuerySet``).

Scoping is structural. Every tenant-owned model uses ``TenantScopedManager`` as its default manager, and a
query on it that was never scoped raises ``TenantScopeError`` when it touches the database. A query is
scoped by ``.visible_to(principal)`` or, for deliberate cross-tenant work, by ``.unscoped()`` — an explicit,
greppable escape hatch. Related managers reached from an instance (``merchant.api_keys``) count as scoped:
the parent itself had to be fetched through a scope first.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
from collections.abc import Iterator
from typing import TYPE_CHECKING, Self

from django.core.exceptions import ValidationError
from django.db import models

from apps.core import rls
from apps.core.errors import ApplicationError

if TYPE_CHECKING:
    from collections.abc import Callable


class TenantScopeError(RuntimeError):
    """A tenant-owned table was queried with no tenant scope: a programming error, never a client's."""


class PrincipalKind(enum.StrEnum):
    OPERATOR = "operator"
    ISV_STAFF = "isv_staff"
    MERCHANT_STAFF = "merchant_staff"
    ISV_KEY = "isv_key"
    MERCHANT_KEY = "merchant_key"
    MINI_PROGRAM_USER = "mini_program_user"  # one wallet user in one mini program, through a user session
    SYSTEM = "system"  # the platform acting within one tenant, e.g. on a super app's notification
    ANONYMOUS = "anonymous"


class Role(models.TextChoices):
    """A membership's role. At an ISV: owner and admin edit ("ISV admin"), developer and viewer read ("ISV
    viewer"). At a merchant: owner and admin edit, staff read and refund when granted, viewer reads."""

    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    STAFF = "staff", "Staff (reads; refunds when granted)"
    VIEWER = "viewer", "Viewer"


EDITOR_ROLES = frozenset({Role.OWNER, Role.ADMIN})


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """The party a request or task acts for, resolved from credentials only.

    ``merchant_id`` is set when the principal acts for one merchant (merchant staff, a merchant key, or an
    ISV key naming one of its merchants in ``Merchant-Id``); ISV-level principals see all their merchants.
    It also duck-types as DRF's ``request.user`` (``is_authenticated``).
    """

    kind: PrincipalKind
    isv_id: int | None = None
    merchant_id: int | None = None
    role: Role | None = None
    user_id: int | None = None
    api_key_id: int | None = None
    mini_program_id: int | None = None
    wallet_user_id: int | None = None
    session_id: int | None = None
    #: A staff membership's grant to refund (owners and admins always may).
    may_refund: bool = False

    @classmethod
    def anonymous(cls) -> Principal:
        return cls(kind=PrincipalKind.ANONYMOUS)

    @classmethod
    def operator(cls, *, user_id: int | None = None) -> Principal:
        return cls(kind=PrincipalKind.OPERATOR, user_id=user_id)

    @classmethod
    def system(cls, *, isv_id: int, merchant_id: int | None = None) -> Principal:
        """The platform's own work for one tenant: sees exactly what that tenant sees."""
        return cls(kind=PrincipalKind.SYSTEM, isv_id=isv_id, merchant_id=merchant_id)

    @classmethod
    def mini_program_user(
        cls, *, isv_id: int, merchant_id: int, mini_program_id: int, wallet_user_id: int, session_id: int
    ) -> Principal:
        """A wallet user in one mini program: sees the merchant's catalogue and only their own orders."""
        return cls(
            kind=PrincipalKind.MINI_PROGRAM_USER,
            isv_id=isv_id,
            merchant_id=merchant_id,
            mini_program_id=mini_program_id,
            wallet_user_id=wallet_user_id,
            session_id=session_id,
        )

    @property
    def is_authenticated(self) -> bool:
        return self.kind is not PrincipalKind.ANONYMOUS

    @property
    def is_anonymous(self) -> bool:
        return not self.is_authenticated

    @property
    def is_operator(self) -> bool:
        return self.kind is PrincipalKind.OPERATOR

    @property
    def is_api_key(self) -> bool:
        return self.kind in (PrincipalKind.ISV_KEY, PrincipalKind.MERCHANT_KEY)

    @property
    def is_staff(self) -> bool:
        return self.kind in (PrincipalKind.ISV_STAFF, PrincipalKind.MERCHANT_STAFF)

    @property
    def is_user_session(self) -> bool:
        return self.kind is PrincipalKind.MINI_PROGRAM_USER

    @property
    def acts_for_merchant(self) -> bool:
        return self.merchant_id is not None

    @property
    def can_edit(self) -> bool:
        """Operators and API keys write; staff write only with an editing role."""
        return self.is_operator or self.is_api_key or self.role in EDITOR_ROLES

    @property
    def can_refund(self) -> bool:
        """Who may give money back from the admin: operators, editors, and staff granted it."""
        return self.is_operator or self.role in EDITOR_ROLES or (self.role is Role.STAFF and self.may_refund)

    def tenant_key(self) -> str:
        """A stable string naming the tenant, for rate limits and logs (never a secret)."""
        if self.is_operator:
            return "operator"
        return f"isv:{self.isv_id}:merchant:{self.merchant_id or '-'}"

    def identity_key(self) -> str:
        """A stable string naming this very party (a key, a user, a session's wallet user), for what is
        kept per caller, such as idempotency keys. Two principals share it only if they are the same caller."""
        return (
            f"{self.kind}:{self.tenant_key()}:key:{self.api_key_id or '-'}:user:{self.user_id or '-'}"
            f":wallet-user:{self.wallet_user_id or '-'}"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TenantFields:
    """Which columns of a model carry its tenants.

    ``isv`` is always set; ``merchant`` is ``None`` for rows no merchant may see (an ISV itself).
    A mini program user session sees a row only through ``wallet_user`` (the column naming the user it
    belongs to) or, for a merchant's public catalogue, ``readable_by_users``; everything else is hidden.
    """

    isv: str
    merchant: str | None
    wallet_user: str | None = None
    readable_by_users: bool = False


_bypass_reason: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenancy_bypass", default=None)


@contextlib.contextmanager
def bypass(reason: str) -> Iterator[None]:
    """Let unscoped queries run inside this block: for framework checks that are global by nature (row-level
    security stands aside too, under the same reason)."""
    token = _bypass_reason.set(reason)
    try:
        with rls.bypass(reason):
            yield
    finally:
        _bypass_reason.reset(token)


def _bypassing(reason: str, rows: Iterator) -> Iterator:
    with rls.bypass(reason):
        yield from rows


class TenantScopedQuerySet(models.QuerySet):
    """A queryset that refuses to hit the database until it has been given a tenant scope."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._tenant_scoped = False
        self._every_tenant = False

    def _clone(self) -> Self:
        clone = super()._clone()
        clone._tenant_scoped = self._tenant_scoped
        clone._every_tenant = self._every_tenant
        return clone

    def _scoped(self) -> Self:
        clone = self._chain()
        clone._tenant_scoped = True
        return clone

    def unscoped(self) -> Self:
        """Every tenant's rows. For operators' tooling, authentication and cross-tenant batch work only.
        Row-level security (``apps.core.rls``) stands aside for it too, naming this model as the reason."""
        clone = self._scoped()
        clone._every_tenant = True
        return clone

    def none(self) -> Self:
        return super().none()._scoped()

    def visible_to(self, principal: Principal) -> Self:
        """The rows ``principal`` may read. Fails closed: an unknown kind of principal sees nothing."""
        fields: TenantFields = self.model.tenant_fields
        if principal.is_operator:
            return self._scoped()
        if principal.isv_id is None or not principal.is_authenticated:
            return self.none()
        scoped = self._scoped().filter(**{fields.isv: principal.isv_id})
        if principal.merchant_id is not None:
            if fields.merchant is None:
                return self.none()
            scoped = scoped.filter(**{fields.merchant: principal.merchant_id})
        if principal.is_user_session:
            if fields.wallet_user is not None:
                return scoped.filter(**{fields.wallet_user: principal.wallet_user_id})
            return scoped if fields.readable_by_users else self.none()
        return scoped

    def _check_scope(self) -> None:
        if self._tenant_scoped or self._known_related_objects or _bypass_reason.get() is not None:
            return
        raise TenantScopeError(
            f"{self.model.__name__} was queried without a tenant scope; "
            "use .visible_to(principal), or .unscoped() for deliberate cross-tenant work"
        )

    def _guarded(name: str) -> Callable:
        original = getattr(models.QuerySet, name)

        def method(self, *args, **kwargs):
            self._check_scope()
            if not self._every_tenant or name in ("resolve_expression", "aiterator"):
                return original(self, *args, **kwargs)  # a subquery runs in its outer query's scope
            reason = f"unscoped {self.model.__name__}"
            if name == "iterator":  # rows are fetched while the caller iterates
                return _bypassing(reason, original(self, *args, **kwargs))
            with rls.bypass(reason):
                return original(self, *args, **kwargs)

        method.__name__ = name
        method.__doc__ = original.__doc__
        return method

    _fetch_all = _guarded("_fetch_all")
    iterator = _guarded("iterator")
    aiterator = _guarded("aiterator")
    raw = _guarded("raw")
    resolve_expression = _guarded("resolve_expression")
    count = _guarded("count")
    exists = _guarded("exists")
    contains = _guarded("contains")
    aggregate = _guarded("aggregate")
    update = _guarded("update")
    delete = _guarded("delete")
    in_bulk = _guarded("in_bulk")
    explain = _guarded("explain")
    del _guarded

    def _combinator_query(self, combinator, *other_qs, all=False):
        for queryset in (self, *other_qs):
            if isinstance(queryset, TenantScopedQuerySet):
                queryset._check_scope()
        return super()._combinator_query(combinator, *other_qs, all=all)

    def bulk_create(self, objs, *args, update_conflicts: bool = False, **kwargs):
        if update_conflicts:
            self._check_scope()  # an upsert rewrites rows that may be another tenant's
        return super().bulk_create(objs, *args, update_conflicts=update_conflicts, **kwargs)


class TenantScopedManager(models.Manager.from_queryset(TenantScopedQuerySet)):
    """Default manager of every tenant-owned model (see the module docstring)."""


class TenantOwnedModel(models.Model):
    """Base of every tenant-owned model.

    Subclasses declare ``tenant_fields``. Uniqueness checks in model validation (admin forms) must see
    every tenant's rows to be correct, so they run under an explicit bypass.
    """

    tenant_fields: TenantFields

    objects = TenantScopedManager()

    class Meta:
        abstract = True

    def clean(self) -> None:
        super().clean()
        fields = self.tenant_fields
        owned_by_both = (fields.isv, fields.merchant) == ("isv_id", "merchant_id")
        if owned_by_both and self.merchant_id and self.isv_id and self.merchant.isv_id != self.isv_id:
            raise ValidationError(
                {"merchant": ValidationError("The merchant belongs to another ISV.", code="merchant_of_other_isv")}
            )

    def validate_for_save(self, *, exclude: tuple[str, ...] = ()) -> None:
        """Run model validation in a service and raise the first problem as ``ApplicationError``.

        The model's own ``clean()`` is the one place for its invariants; admin forms reach it the same way.
        """
        try:
            self.full_clean(exclude=list(exclude), validate_unique=False, validate_constraints=False)
        except ValidationError as error:
            attr, problems = next(iter(error.error_dict.items()))
            problem = problems[0]
            raise ApplicationError(
                f"validation.{problem.code or 'invalid'}", " ".join(problem.messages), attr=attr
            ) from None

    def validate_unique(self, exclude=None) -> None:
        with bypass("uniqueness is checked across all tenants"):
            super().validate_unique(exclude=exclude)

    def validate_constraints(self, exclude=None) -> None:
        with bypass("constraints are checked across all tenants"):
            super().validate_constraints(exclude=exclude)
