"""The one error family that services raise; the API renders every one of them the same way.

``code`` is stable and namespaced by app (``accounts.api_key_revoked``); clients switch on it, humans read
``message``; ``attr`` names the offending input field when there is one.
"""

from __future__ import annotations


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
