"""The admin token: generated on first start, stored 0600 in the data folder."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from viridian.config import token_path


def load_or_create_token(data_dir: Path) -> str:
    """Return the admin token, creating it (0600, atomically) on first start."""
    path = token_path(data_dir)
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return token


def bearer_matches(header: str | None, token: str) -> bool:
    """True if an ``Authorization`` header carries ``Bearer <token>`` (constant time)."""
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())
