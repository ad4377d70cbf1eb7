"""Opaque public identifiers: a type prefix and a lower-case ULID (``mer_01jd3k…``).

Integer primary keys never leave the database; ids are time-ordered so their index stays compact.
"""

import functools
import re

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.deconstruct import deconstructible
from ulid import ULID

PUBLIC_ID_MAX_LENGTH = 40
PUBLIC_ID_PATTERN = r"[a-z]{2,8}_[0-9a-z]{26}"
_PUBLIC_ID = re.compile(rf"^{PUBLIC_ID_PATTERN}$")


def is_public_id(value: str) -> bool:
    """Whether ``value`` has the shape of a public id: checked before it reaches a query."""
    return bool(_PUBLIC_ID.match(value))


class PublicIdConverter:
    """URL converter ``<public_id:name>``: a malformed id matches no route, so never reaches a query."""

    regex = PUBLIC_ID_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


@deconstructible
class PublicIdFactory:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self) -> str:
        return f"{self.prefix}_{str(ULID()).lower()}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicIdFactory) and other.prefix == self.prefix

    def __hash__(self) -> int:
        return hash(self.prefix)


def public_id_field(prefix: str, *, unique: bool = True) -> models.CharField:
    """``unique=False`` for distributed tables, which declare ``unique_per_merchant("public_id")`` instead."""
    return models.CharField(
        max_length=PUBLIC_ID_MAX_LENGTH,
        unique=unique,
        db_index=not unique,
        editable=False,
        default=PublicIdFactory(prefix),
    )


@functools.cache
def public_id_fields() -> dict[str, str]:
    """Each public id prefix and the log field its ids go in (``pay`` → ``payment_id``), read off the models."""
    fields = {}
    for model in apps.get_models():
        try:
            default = model._meta.get_field("public_id").default
        except FieldDoesNotExist:
            continue
        if isinstance(default, PublicIdFactory):
            fields[default.prefix] = f"{model._meta.model_name}_id"
    return fields
