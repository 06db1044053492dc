"""The source's client of the target service's migration routes (docs/api.md,
"Migration"). The target's token is the peer credential the admin gave with the move; it
is sent to that target's address only and never stored or logged.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from viridian.config import API_PREFIX
from viridian.errors import BadRequest, Conflict, HostError, NotFound, ViridianError
from viridian.service.tls import peer_verify

if TYPE_CHECKING:
    import httpx

__all__ = ["AbortOutcome", "Peer", "check_target_url"]

_TIMEOUT_S = 30.0
COMMIT_TIMEOUT_S = 300.0
"""A quick move's commit restores the VM on the target: as long as a restore may take."""


class AbortOutcome(enum.Enum):
    """What the target answered to "abort": the VM was never committed there (``ABORTED``),
    it was (``COMMITTED``), or no answer (``UNKNOWN``)."""

    ABORTED = "aborted"
    COMMITTED = "committed"
    UNKNOWN = "unknown"


def check_target_url(url: str) -> str:
    """The target service's base URL (``http(s)://HOST:PORT``) without a trailing slash.

    :raises BadRequest: not an http(s) URL with a host.
    """
    parsed = urlsplit(url) if "://" in url else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BadRequest(f"'to' must be the target service's URL, e.g. http://HOST:PORT "
                         f"(got {url!r}); nothing was changed", to=url)
    return url.rstrip("/")


class Peer:
    """One target service, reached with the peer token the admin gave (routes under
    ``prefix``), or a member host of this host's cluster reached with the cluster's peer
    token (``prefix`` :data:`~viridian.service.migration.cluster_peer.PEER_PREFIX`).
    A member's published ``certificate`` is pinned (``service.tls.peer_verify``): the
    self-signed certificate each host makes for itself is trusted by the others."""

    def __init__(self, url: str, token: str, prefix: str = API_PREFIX,
                 certificate: str = "") -> None:
        if not token.strip():
            raise BadRequest("'token' (the target service's token) is empty; nothing was "
                             "changed")
        import httpx  # on first move: the service need not carry it (architecture, "Scale")

        self.url = check_target_url(url)
        self.member: str | None = None
        """The target's cluster host name when it is a member of this host's cluster."""
        self._client = httpx.AsyncClient(
            base_url=self.url + prefix, timeout=_TIMEOUT_S,
            verify=peer_verify(self.url, certificate),
            headers={"Authorization": f"Bearer {token}"})

    async def close(self) -> None:
        await self._client.aclose()

    async def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /migrations/incoming``: the target checks and gets ready; its answer."""
        return await self._call("POST", "/migrations/incoming", body)

    async def commit(self, incoming_id: str) -> dict[str, Any]:
        """``POST /migrations/incoming/{id}/commit``: the VM runs on the target now."""
        return await self._call("POST", f"/migrations/incoming/{incoming_id}/commit", None,
                                COMMIT_TIMEOUT_S)

    async def abort(self, incoming_id: str) -> AbortOutcome:
        """``DELETE /migrations/incoming/{id}``; never raises."""
        try:
            await self._call("DELETE", f"/migrations/incoming/{incoming_id}", None)
        except NotFound:
            return AbortOutcome.ABORTED  # the target never had it, or dropped it already
        except Conflict:
            return AbortOutcome.COMMITTED
        except ViridianError:
            return AbortOutcome.UNKNOWN
        return AbortOutcome.ABORTED

    async def _call(self, method: str, path: str, body: dict[str, Any] | None,
                    timeout: float = _TIMEOUT_S) -> dict[str, Any]:
        import httpx

        try:
            reply = await self._client.request(method, path, json=body, timeout=timeout)
        except httpx.HTTPError as err:
            raise HostError(f"the target {self.url} did not answer {method} {path}: {err}",
                            target=self.url) from err
        data = json_object(reply)
        if reply.is_success:
            return data
        raise _target_error(reply.status_code, data, self.url)


def json_object(reply: httpx.Response) -> dict[str, Any]:
    """A peer's JSON object answer; ``{}`` for a body that is not one (a proxy's page)."""
    try:
        data = reply.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _target_error(status: int, data: dict[str, Any], url: str) -> ViridianError:
    """The target's refusal as one of our errors, its message quoted."""
    found = data.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    message = f"the target {url} refused: {error.get('message', f'HTTP {status}')}"
    kinds: dict[int, type[ViridianError]] = {400: BadRequest, 401: BadRequest, 403: BadRequest,
                                             404: NotFound, 409: Conflict, 422: BadRequest}
    return kinds.get(status, HostError)(message, target=url, target_code=error.get("code"))
