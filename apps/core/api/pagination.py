from rest_framework import exceptions, pagination

from apps.core.errors import ApplicationError
from apps.core.ids import is_public_id


class CursorPagination(pagination.CursorPagination):
    """Opaque cursors over the time-ordered public id, newest first: stable under concurrent inserts."""

    ordering = "-public_id"
    page_size = 25
    page_size_query_param = "limit"
    max_page_size = 100

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
