"""Request ids: one per request, echoed in ``X-Request-Id``, in every error envelope and in every log line."""

import logging
import re
import time

from django.http import HttpResponse, JsonResponse
from ulid import ULID

from apps.core import metrics, rls
from apps.core.errors import error_body
from apps.core.ids import PUBLIC_ID_PATTERN, public_id_fields
from apps.core.request_context import current_request_id, request_id_var

# A caller's id is reused only if it is short and plain, so it cannot inject into logs or headers.
_ACCEPTABLE_INBOUND_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestIdMiddleware:
    header = "X-Request-Id"

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        inbound = request.headers.get(self.header, "")
        request_id = inbound if _ACCEPTABLE_INBOUND_ID.match(inbound) else f"req_{str(ULID()).lower()}"
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[self.header] = request_id
        return response


class MetricsMiddleware:
    """Counts every answer by route template (``api/v1/orders/<public_id:order_id>``, never the path with its
    ids) for ``/metrics``; a request no route matched is ``unmatched``."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        metrics.request_answered(
            route=match.route if match else "unmatched",
            method=request.method if request.method in _KNOWN_METHODS else "other",  # a client picks these
            status=response.status_code,
            seconds=time.monotonic() - started,
        )
        return response


_PUBLIC_ID_IN_TEXT = re.compile(rf"\b{PUBLIC_ID_PATTERN}\b")


class RequestIdLogFilter(logging.Filter):
    """Every log line carries the request id and the tenant (ISV and merchant ids) its work is scoped to, and
    each public id its message names as a field of its own (``payment_id``, ``order_id``, ``refund_id``, …)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        scope = rls.current()
        record.isv_id, record.merchant_id = scope.isv_id, scope.merchant_id
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: logging reports it itself
            return True
        for public_id in _PUBLIC_ID_IN_TEXT.findall(message):
            field = public_id_fields().get(public_id.partition("_")[0])
            if field and not hasattr(record, field):
                setattr(record, field, public_id)
        return True


class RejectNulBytesMiddleware:
    """A NUL byte in the path or query string is never legitimate, and PostgreSQL refuses it in text: 400."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "\x00" in query or "%00" in query:
            message = "The request URL contains a NUL byte."
            if request.path.startswith("/api/"):
                return JsonResponse(
                    error_body(type="invalid_request", code="request.nul_byte", message=message), status=400
                )
            return HttpResponse(message, status=400, content_type="text/plain")
        return self.get_response(request)


class TenantScopeMiddleware:
    """Every request starts with the database scope closed (``apps.core.rls``): protected rows stay hidden
    until a credential names its tenant. A streamed body is read in the scope its view ended with."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        token = rls.enter(rls.CLOSED)
        try:
            response = self.get_response(request)
            if response.streaming:
                response.streaming_content = _in_scope(response.streaming_content, rls.current())
            return response
        finally:
            rls.leave(token)


def _in_scope(chunks, scope):
    with rls.scoped(scope):
        yield from chunks
