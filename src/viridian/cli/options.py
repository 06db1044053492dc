"""The root command's options, kept as ``ctx.obj``: a module of its own so that commands
that never talk HTTP (``disk``, ``plan``, ``guestkit``) do not import the HTTP client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClientOptions:
    """The root command's ``--url``, ``--token``, ``--data-dir`` and TLS trust options
    (``--ca-file``, ``--trust-fingerprint``: viridian.cli.trust), kept as ``ctx.obj``."""

    url: str
    token: str | None
    data_dir: Path
    ca_file: Path | None = None
    trust_fingerprint: str | None = None
