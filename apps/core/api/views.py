"""The one base class of every tenant API view.

It resolves the principal from the credential (never from the body), refuses principals the endpoint does
not serve, and hands the view ``self.principal`` for its selectors and services. Subclasses cannot swap
authentication, permissions or throttling piecemeal: ``__init_subclass__`` rejects the attempt at import.
A POST with an ``Idempotency-Key`` is claimed once those checks pass and answered from the stored response
when it was seen before (``apps.core.idempotency``).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from apps.core import rls
from apps.core.errors import ApplicationError, PayloadTooLargeError, PermissionDeniedError
from apps.core.idempotency import (
    IDEMPOTENCY_HEADER,
    IdempotentReplay,
    idempotency_key_parse,
    idempotency_record_claim,
    idempotency_record_complete,
    idempotency_record_release,
    idempotency_replay,
    request_fingerprint,
)
from apps.core.models import IdempotencyRecord, IdempotencyState
from apps.core.tenancy import Principal, PrincipalKind

API_KEY_PRINCIPALS = frozenset({PrincipalKind.ISV_KEY, PrincipalKind.MERCHANT_KEY})

_PROTECTED = frozenset(
    {
        "authentication_classes",
        "permission_classes",
        "throttle_classes",
        "initial",
        "perform_authentication",
        "check_permissions",
        "get_authenticators",
        "get_permissions",
        "get_throttles",
        "dispatch",
        "handle_exception",
    }
)


class TenantApiView(APIView):
    #: Principal kinds this endpoint serves; others get 403 ``auth.principal_not_allowed``.
    allowed_principals: frozenset[PrincipalKind] = API_KEY_PRINCIPALS
    #: Principal kinds that may use the unsafe methods (POST, PUT, PATCH, DELETE); ``None``: as for reads.
    write_principals: frozenset[PrincipalKind] | None = None
    #: The endpoint acts on one merchant: an ISV key must name it in ``Merchant-Id``.
    requires_merchant: bool = False
    #: The largest request body accepted (413 above it); ``None``: ``DATA_UPLOAD_MAX_MEMORY_SIZE``.
    max_body_bytes: int | None = None

    principal: Principal
    _idempotency_claim: IdempotencyRecord | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        overridden = _PROTECTED.intersection(vars(cls))
        if overridden:
            raise TypeError(f"{cls.__name__} may not override {sorted(overridden)}: tenancy lives in TenantApiView")

    def initial(self, request, *args, **kwargs) -> None:
        content_length = request.META.get("CONTENT_LENGTH") or "0"
        limit = self.max_body_bytes or settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if content_length.isdigit() and int(content_length) > limit:
            raise PayloadTooLargeError("request.body_too_large", f"The request body exceeds {limit} bytes.")
        super().initial(request, *args, **kwargs)
        principal: Principal = request.auth if isinstance(request.auth, Principal) else Principal.anonymous()
        rls.enter(rls.scope_for(principal))  # the request's database scope from here on (the middleware ends it)
        allowed = self.allowed_principals
        if self.write_principals is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
            allowed = self.write_principals
        if principal.kind not in allowed:
            raise PermissionDeniedError(
                "auth.principal_not_allowed",
                f"This endpoint does not accept a {principal.kind.replace('_', ' ')} credential.",
            )
        if self.requires_merchant and principal.merchant_id is None:
            raise ApplicationError(
                "auth.merchant_id_required",
                "An ISV key must name the merchant it acts for in the Merchant-Id header.",
                attr="Merchant-Id",
            )
        self.principal = principal
        key = request.headers.get(IDEMPOTENCY_HEADER)
        # Keys are per caller; anonymous requests (those that start a credential) have no caller to scope to.
        if request.method == "POST" and key is not None and principal.is_authenticated:
            record = idempotency_record_claim(
                scope=principal.identity_key(),
                key=idempotency_key_parse(key),
                fingerprint=request_fingerprint(request),
            )
            if record.state == IdempotencyState.COMPLETED:
                raise IdempotentReplay(record)
            self._idempotency_claim = record

    def handle_exception(self, exc):
        if isinstance(exc, IdempotentReplay):
            return idempotency_replay(exc.record)  # the view never ran
        return super().handle_exception(exc)

    def dispatch(self, request, *args, **kwargs):
        """Run the request; then store its response under its idempotency claim, or release the claim when
        the request crashed, so that a retry runs again. The database scope ``initial`` set ends with it."""
        token = rls.enter(rls.current())
        try:
            try:
                response = super().dispatch(request, *args, **kwargs)
            except BaseException:
                if self._idempotency_claim is not None:
                    idempotency_record_release(record=self._idempotency_claim)
                raise
            if self._idempotency_claim is not None:
                idempotency_record_complete(record=self._idempotency_claim, response=response)
            return response
        finally:
            rls.leave(token)

    def paginated_response(self, queryset: QuerySet, serializer_class: type[serializers.Serializer]) -> Response:
        """One cursor page of ``queryset`` as ``{"next", "previous", "results"}``."""
        paginator = api_settings.DEFAULT_PAGINATION_CLASS()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)
