"""The one error family that services raise; the API renders every one of them the same way.

``code`` is stable and namespaced by app (``accounts.api_key_revoked``); clients switch on it, humans read
``message``; ``attr`` names the offending input field when there is one.
"""

from __future__ import annotations

from typing import Any

from apps.core.request_context import current_request_id


def error_body(*, type: str, code: str, message: str, attr: str | None = None) -> dict[str, Any]:
    """The one error envelope of the API."""
    return {
        "error": {
            "type": type,
            "code": code,
            "message": message,
            "attr": attr,
            "request_id": current_request_id(),
        }
    }


class ApplicationError(Exception):
    status_code = 400
    type = "invalid_request"

    def __init__(self, code: str, message: str, *, attr: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.attr = attr


class NotFoundError(ApplicationError):
    """Missing, or belonging to another tenant: the two are deliberately indistinguishable."""

    status_code = 404
    type = "not_found"


class ConflictError(ApplicationError):
    status_code = 409
    type = "conflict"


class PermissionDeniedError(ApplicationError):
    status_code = 403
    type = "permission_error"


class AuthenticationError(ApplicationError):
    status_code = 401
    type = "authentication_error"


class PayloadTooLargeError(ApplicationError):
    status_code = 413


class RateLimitedError(ApplicationError):
    status_code = 429
    type = "rate_limit_error"

    def __init__(self, code: str, message: str, *, retry_after: int) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class UpstreamUnavailableError(ApplicationError):
    """A super app did not give a usable answer (timeout, 5xx, unverifiable): the client may retry."""

    status_code = 503
    type = "upstream_error"
