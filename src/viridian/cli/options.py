"""The root command's options, kept as ``ctx.obj``: a module of its own so that commands
that never talk HTTP (``disk``, ``plan``, ``guestkit``) do not import the HTTP client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClientOptions:
    """The root command's ``--url``, ``--token`` and ``--data-dir``, kept as ``ctx.obj``."""

    url: str
    token: str | None
    data_dir: Path
