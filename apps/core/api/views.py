"""The one base class of every tenant API view.

It resolves the principal from the credential (never from the body), refuses principals the endpoint does
not serve, and hands the view ``self.principal`` for its selectors and services. Subclasses cannot swap
authentication, permissions or throttling piecemeal: ``__init_subclass__`` rejects the attempt at import.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from apps.core.errors import ApplicationError, PayloadTooLargeError, PermissionDeniedError
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
        principal: Principal = request.auth
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

    def paginated_response(self, queryset: QuerySet, serializer_class: type[serializers.Serializer]) -> Response:
        """One cursor page of ``queryset`` as ``{"next", "previous", "results"}``."""
        paginator = api_settings.DEFAULT_PAGINATION_CLASS()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)
