"""One error envelope for every API error: ``{"error": {"type", "code", "message", "attr", "request_id"}}``.

DRF's own exceptions, Django's 404, our ``ApplicationError`` family and even unhandled failures (via the
project's ``handler404``/``handler500`` for ``/api/`` paths) all leave through here. A database that cannot
be reached (a connection reset, a server restarting) is a 503 with ``Retry-After``, not a 500: the request
may be sent again, with its ``Idempotency-Key`` if it had one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from apps.core.errors import (
    ApplicationError,
    AuthenticationError,
    PayloadTooLargeError,
    RateLimitedError,
    error_body,
)

logger = logging.getLogger(__name__)

#: What the database driver raises when the connection is lost, refused or closed under the request.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
DATABASE_RETRY_AFTER_SECONDS = 5

# DRF exception class -> (type, our code) for the errors the framework raises itself.
_FRAMEWORK_ERRORS: dict[type[exceptions.APIException], tuple[str, str]] = {
    exceptions.ParseError: ("invalid_request", "request.malformed_body"),
    exceptions.UnsupportedMediaType: ("invalid_request", "request.unsupported_media_type"),
    exceptions.NotAuthenticated: ("authentication_error", "auth.missing_credentials"),
    exceptions.AuthenticationFailed: ("authentication_error", "auth.invalid_credentials"),
    exceptions.PermissionDenied: ("permission_error", "auth.permission_denied"),
    exceptions.NotFound: ("not_found", "resource.not_found"),
    exceptions.MethodNotAllowed: ("invalid_request", "request.method_not_allowed"),
    exceptions.NotAcceptable: ("invalid_request", "request.not_acceptable"),
    exceptions.Throttled: ("rate_limit_error", "request.rate_limited"),
}


def _flatten(detail: Any, path: str = "") -> Iterator[tuple[str | None, exceptions.ErrorDetail]]:
    """Validation details as (dotted field path, error) pairs, in the serializer's field order."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            child = path if key == "non_field_errors" else f"{path}.{key}" if path else str(key)
            yield from _flatten(value, child)
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                yield from _flatten(value, f"{path}.{index}" if path else str(index))
            else:
                yield path or None, value
    else:
        yield path or None, detail


def _validation_response(exc: exceptions.ValidationError) -> Response:
    pairs = list(_flatten(exc.detail))
    attr, first = pairs[0]
    body = error_body(
        type="invalid_request",
        code=f"validation.{getattr(first, 'code', 'invalid')}",
        message=f"{attr}: {first}" if attr else str(first),
        attr=attr,
    )
    body["error"]["details"] = [
        {"attr": field, "code": f"validation.{getattr(err, 'code', 'invalid')}", "message": str(err)}
        for field, err in pairs
    ]
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, Http404 | ObjectDoesNotExist):
        # A tenant-scoped lookup that finds nothing is "not yours or not there", whichever layer hid the row.
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLargeError("request.body_too_large", str(exc))

    if isinstance(exc, ApplicationError):
        set_rollback()
        headers = {}
        if isinstance(exc, AuthenticationError):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        if isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(exc.retry_after)
        return Response(
            error_body(type=exc.type, code=exc.code, message=exc.message, attr=exc.attr),
            status=exc.status_code,
            headers=headers,
        )
    if isinstance(exc, exceptions.ValidationError):
        set_rollback()
        return _validation_response(exc)
    if isinstance(exc, DATABASE_UNAVAILABLE):
        logger.warning("database unavailable during %s", context["request"].path, exc_info=exc)
        return _database_unavailable(Response)
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django's handler500 renders the envelope and the error is logged

    set_rollback()
    kind, code = next(
        (mapped for cls, mapped in _FRAMEWORK_ERRORS.items() if isinstance(exc, cls)),
        ("api_error", f"request.{exc.default_code}"),
    )
    if isinstance(exc.detail, exceptions.ErrorDetail) and "." in str(exc.detail.code):
        code = exc.detail.code  # raised by our code with a namespaced code
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait))
    return Response(error_body(type=kind, code=code, message=str(exc.detail)), status=exc.status_code, headers=headers)


def json_not_found(message: str = "No such endpoint. See /api/v1/docs/ for the routes.") -> JsonResponse:
    body = error_body(type="not_found", code="request.unknown_route", message=message)
    return JsonResponse(body, status=404)


def _database_unavailable(response_class: type[Response] | type[JsonResponse]) -> Response | JsonResponse:
    body = error_body(
        type="api_error",
        code="server.database_unavailable",
        message=(
            "The service lost its database connection; retry after the seconds in Retry-After "
            "(with the same Idempotency-Key for a POST)."
        ),
    )
    return response_class(body, status=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})


def json_server_error() -> JsonResponse:
    """``handler500`` for ``/api/``. It runs while Django handles the uncaught exception, so a database lost
    where no view could answer for it (after the view, while its response is stored) is a 503 here too."""
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE):
        return _database_unavailable(JsonResponse)
    body = error_body(
        type="api_error",
        code="server.internal_error",
        message="Something went wrong on our side; quote the request_id when you report it.",
    )
    return JsonResponse(body, status=500)
