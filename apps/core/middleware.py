"""Request ids: one per request, echoed in ``X-Request-Id``, in every error envelope and in every log line."""

import contextvars
import logging
import re

from ulid import ULID

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# A caller's id is reused only if it is short and plain, so it cannot inject into logs or headers.
_ACCEPTABLE_INBOUND_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def current_request_id() -> str:
    return _request_id.get()


class RequestIdMiddleware:
    header = "X-Request-Id"

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        inbound = request.headers.get(self.header, "")
        request_id = inbound if _ACCEPTABLE_INBOUND_ID.match(inbound) else f"req_{str(ULID()).lower()}"
        request.request_id = request_id
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response[self.header] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True
