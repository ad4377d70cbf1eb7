from rest_framework import exceptions, pagination

from apps.core.errors import ApplicationError
from apps.core.ids import is_public_id


class CursorPagination(pagination.CursorPagination):
    """Opaque cursors over the time-ordered public id, newest first: stable under concurrent inserts."""

    ordering = "-public_id"
    page_size = 25
    page_size_query_param = "limit"
    max_page_size = 100
    page_size_query_description = f"Items per page, 1 or more: {page_size} when omitted, at most {max_page_size}."

    def get_page_size(self, request) -> int:
        """``limit`` as asked, capped at ``max_page_size``; a limit that is not a positive whole number is refused
        (DRF would silently serve the default page instead)."""
        limit = request.query_params.get(self.page_size_query_param)
        if limit is None:
            return self.page_size
        digits = limit.lstrip("0")
        if not (limit.isascii() and limit.isdigit() and digits):
            raise ApplicationError(
                "pagination.invalid_limit",
                f"limit must be a positive whole number; a page holds at most {self.max_page_size} items.",
                attr="limit",
            )
        # Compared as text first: int() of thousands of digits is refused by Python (and slow).
        return (
            self.max_page_size if len(digits) > len(str(self.max_page_size)) else min(int(digits), self.max_page_size)
        )

    def decode_cursor(self, request):
        invalid = ApplicationError(
            "pagination.invalid_cursor", "The cursor is not valid; use a `next` or `previous` link.", attr="cursor"
        )
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            raise invalid from None
        if cursor is not None and cursor.position is not None and not is_public_id(cursor.position):
            raise invalid  # a forged position would otherwise reach the query
        return cursor
