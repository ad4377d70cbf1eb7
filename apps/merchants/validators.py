"""Checks on uploaded business-license documents: size, and type by content (never by name)."""

from django.conf import settings
from django.core.exceptions import ValidationError

# The first bytes of each accepted type.
_SIGNATURES = {b"%PDF-": "PDF", b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


def validate_license_document(document) -> None:
    limit = settings.LICENSE_DOCUMENT_MAX_BYTES
    if document.size > limit:
        raise ValidationError(
            f"The document is {document.size} bytes; the limit is {limit} bytes.", code="file_too_large"
        )
    position = document.tell() if hasattr(document, "tell") else 0
    document.seek(0)
    head = document.read(8)
    document.seek(position)
    if not any(head.startswith(signature) for signature in _SIGNATURES):
        raise ValidationError("The document must be a PDF, PNG or JPEG file.", code="file_type_not_allowed")
