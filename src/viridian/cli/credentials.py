"""Which token the CLI sends, and to whom (docs/api.md, "Authentication").

Rule: a token given by ``--token`` / ``VIRIDIAN_TOKEN`` is sent as given (an empty one
is an error). Otherwise the local token file ``<data>/token`` — root's admin token — is
sent only to the address the local service recorded in ``<data>/service.json`` when it
started (``{"host", "port", "pid"}``, written by ``viridian serve``), loopback names
counting as one. Any other ``--url`` is refused before a connection is made, so no
process listening elsewhere ever receives the local token.

Between the two: a session opened by ``viridian login URL`` is kept in the user's
``sessions.json`` (``$XDG_CONFIG_HOME/viridian``, else ``~/.config/viridian``; mode 0600)
under URL's normalised address, and sent to that address only, until it expires or
``viridian logout URL`` forgets it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from viridian import config
from viridian.errors import BadRequest, Unauthorized

__all__ = [
    "SERVICE_RECORD_NAME",
    "choose_token",
    "forget_session",
    "load_token",
    "normalised_url",
    "read_service_record",
    "recorder_alive",
    "same_address",
    "sessions_path",
    "store_session",
    "stored_session",
]

SERVICE_RECORD_NAME = config.SERVICE_RECORD_NAME
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
    session = stored_session(url)
    if session is not None:
        return session, f"the session 'viridian login' stored for {normalised_url(url)}"
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


# --- sessions from `viridian login` ----------------------------------------------------


def sessions_path() -> Path:
    """Where ``viridian login`` keeps sessions: ``$XDG_CONFIG_HOME/viridian/sessions.json``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "viridian" / "sessions.json"


def normalised_url(url: str) -> str:
    """``scheme://host:port/path`` with the default scheme/port filled in and the host
    lowercased: the key a session is stored under (no other address gets it)."""
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url.rstrip("/"))
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        port = 0
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{host}:{port}{parts.path}"


def _sessions() -> dict[str, Any]:
    found = _read_record(sessions_path())
    return found if found is not None else {}


def stored_session(url: str) -> str | None:
    """The unexpired session token stored for ``url``'s address, or None."""
    entry = _sessions().get(normalised_url(url))
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
        return None
    if float(entry.get("expires") or 0) <= time.time():
        return None
    return str(entry["token"])


def store_session(url: str, entry: dict[str, Any]) -> Path:
    """Keep ``entry`` (``token``, ``expires``, ``user``, ``realm``) for ``url`` (0600)."""
    sessions = _sessions()
    sessions[normalised_url(url)] = entry
    _write_sessions(sessions)
    return sessions_path()


def forget_session(url: str) -> str | None:
    """Drop the session stored for ``url``; the token it held, or None."""
    sessions = _sessions()
    entry = sessions.pop(normalised_url(url), None)
    if entry is not None:
        _write_sessions(sessions)
    return entry.get("token") if isinstance(entry, dict) else None


def _write_sessions(sessions: dict[str, Any]) -> None:
    path = sessions_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(sessions, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)
