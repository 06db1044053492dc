"""Which token the CLI sends, and to whom (docs/api.md, "Authentication").

Rule: a token given by ``--token`` / ``VIRIDIAN_TOKEN`` is sent as given (an empty one
is an error). Otherwise the local token file ``<data>/token`` — root's admin token — is
sent only to the address the local service recorded in ``<data>/service.json`` when it
started (``{"host", "port", "pid"}``, written by ``viridian serve``), loopback names
counting as one. Any other ``--url`` is refused before a connection is made, so no
process listening elsewhere ever receives the local token.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from viridian import config
from viridian.errors import BadRequest, Unauthorized

__all__ = [
    "SERVICE_RECORD_NAME",
    "choose_token",
    "load_token",
    "read_service_record",
    "recorder_alive",
    "same_address",
]

SERVICE_RECORD_NAME = "service.json"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
DEFAULT_PORTS = {"http": 80, "https": 443}
EXPLICIT_ORIGIN = "the token given by --token or VIRIDIAN_TOKEN"


def choose_token(url: str, explicit: str | None, data_dir: Path) -> tuple[str | None, str]:
    """(token to send or None, a phrase saying where it came from or why there is none).

    :raises BadRequest: ``explicit`` is set but empty.
    :raises Unauthorized: only the local token is at hand and ``url`` is not the address
        the local service recorded; nothing was sent.
    """
    if explicit is not None:
        if not explicit.strip():
            raise BadRequest(
                "the token given by --token or VIRIDIAN_TOKEN is empty; give the token, or "
                "unset VIRIDIAN_TOKEN to use the local service's token file"
            )
        return explicit, EXPLICIT_ORIGIN
    token, origin = load_token(data_dir)
    if token is not None:
        _check_local_destination(url, data_dir)
    return token, origin


def load_token(data_dir: Path) -> tuple[str | None, str]:
    """Read ``<data_dir>/token``: (token or None, a phrase saying where it came from or why not)."""
    path = config.token_path(data_dir)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        return None, (
            f"no token: {path} could not be read ({reason}); pass --token or set VIRIDIAN_TOKEN"
        )
    return (token or None), f"the token in {path}"


def _check_local_destination(url: str, data_dir: Path) -> None:
    """Raise ``Unauthorized`` unless ``url`` is where the local service said it listens."""
    record_path = data_dir / SERVICE_RECORD_NAME
    record = _read_record(record_path)
    refusal = (
        f"not sending the local token ({config.token_path(data_dir)}) to {url}: "
        + _why_not(url, record, record_path)
        + "; for that service pass --token or set VIRIDIAN_TOKEN"
    )
    if record is None or not recorder_alive(record) or not same_address(url, record):
        raise Unauthorized(refusal, url=url)


def _why_not(url: str, record: dict[str, Any] | None, record_path: Path) -> str:
    if record is None:
        return (
            f"no local service has recorded its address in {record_path} "
            "(`viridian serve` records it when it starts)"
        )
    where = f"{record.get('host')}:{record.get('port')}"
    if not recorder_alive(record):
        return f"the service that recorded {where} in {record_path} no longer runs"
    return f"the local service listens on {where} (recorded in {record_path})"


def read_service_record(data_dir: Path) -> dict[str, Any] | None:
    """``<data_dir>/service.json`` (host, port, pid of the local service), or None."""
    return _read_record(data_dir / SERVICE_RECORD_NAME)


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def recorder_alive(record: dict[str, Any]) -> bool:
    """False only when the recording process is known to be gone (a stale record)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def same_address(url: str, record: dict[str, Any]) -> bool:
    """Whether ``url``'s host:port is the recorded listening address.

    Loopback names (localhost, 127.0.0.0/8, ::1) are one host; a service listening on
    every address (0.0.0.0, ::) is reached through loopback.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        return False
    recorded_host = _normalised(str(record.get("host", "")))
    if port != record.get("port"):
        return False
    host = _normalised(parts.hostname or "")
    if recorded_host in WILDCARDS:
        return host == "loopback"
    return host == recorded_host


def _normalised(host: str) -> str:
    host = host.strip().lower().removeprefix("[").removesuffix("]")
    if host in LOOPBACK_NAMES or host.startswith("127."):
        return "loopback"
    return host
