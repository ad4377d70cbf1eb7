"""Secrets for the embedded default, generated once per checkout into ``var/`` (never committed).

Production must set ``SECRET_KEY`` and ``FIELD_ENCRYPTION_KEYS`` itself; settings refuse to start otherwise.
"""

import contextlib
import json
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet


def load_or_create(path: Path) -> dict[str, str]:
    """Read the development secrets file, creating it atomically if no process has yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generated = {
            "SECRET_KEY": secrets.token_urlsafe(50),
            "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        }
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secrets-")
        with os.fdopen(fd, "w") as handle:
            json.dump(generated, handle)
        # link() refuses to replace: when processes race, the first file wins and all read it.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
        os.unlink(temporary)
    return json.loads(path.read_text())
