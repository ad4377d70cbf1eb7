"""CSV exports from the admin: streamed (memory flat whatever the size), capped (the last line says when rows
were left out), and safe to open in a spreadsheet (no cell is read as a formula)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence

from django.http import StreamingHttpResponse

#: An export stops after this many rows and says so in its last line.
EXPORT_MAX_ROWS = 100_000
#: Cells a spreadsheet would read as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(value):
    """A text cell a spreadsheet would evaluate is quoted with a leading apostrophe; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class _Echo:
    """The file-like object ``csv.writer`` writes to: each row is returned, not stored."""

    def write(self, value: str) -> str:
        return value


def streamed_csv(
    *, filename: str, columns: Sequence[str], rows: Iterable[Sequence], max_rows: int, more: str
) -> StreamingHttpResponse:
    """A CSV download of ``columns`` then ``rows``, at most ``max_rows`` of them: ``rows`` should yield one
    more (slice the query at ``max_rows + 1``) so that a cut export ends with a line saying ``more``."""
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(columns)
        for number, row in enumerate(rows, start=1):
            if number > max_rows:
                yield writer.writerow([f"# stopped after {max_rows} rows; {more}"])
                return
            yield writer.writerow([formula_safe(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
