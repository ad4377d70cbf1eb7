from rest_framework import exceptions, pagination

from apps.core.errors import ApplicationError


class CursorPagination(pagination.CursorPagination):
    """Opaque cursors over the time-ordered public id, newest first: stable under concurrent inserts."""

    ordering = "-public_id"
    page_size = 25
    page_size_query_param = "limit"
    max_page_size = 100

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise ApplicationError(
                "pagination.invalid_cursor",
                "The cursor is not valid; use a `next` or `previous` link.",
                attr="cursor",
            ) from None
