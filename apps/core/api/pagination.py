from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Opaque cursors over the time-ordered public id, newest first: stable under concurrent inserts."""

    ordering = "-public_id"
    page_size = 25
    page_size_query_param = "limit"
    max_page_size = 100
