"""The hosts of one cluster authorize each other's migration calls (docs/architecture.md,
"Failover cluster: moves of HA VMs"; docs/api.md, "Cluster peer routes").

A **cluster peer token** is made once, at ``cluster create`` (32 random bytes), kept in
etcd under ``/viridian/<cluster>/peer_token`` and copied by every host at create/join into
``<data>/cluster/peer.token`` (0600). A source sends it only to the service URL a member
host publishes in its host record, and only to the peer routes
``/api/v1/cluster/peer/...``, which accept nothing else (and nothing else accepts it): it
authorizes exactly "prepare, commit or abort a move into this host" and "provision VMs
here for a named user, whom this host authorizes itself"
(:mod:`viridian.service.library.peer_routes`).
The admin token never leaves its host. etcd is the cluster's root of trust already (who
can write it can move owner keys), so the token is as safe as the cluster itself.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request

from viridian.config import API_PREFIX
from viridian.errors import Unauthorized
from viridian.service.migration.bodies import IncomingRequest

if TYPE_CHECKING:
    from viridian.service.migration.capability import Migration

__all__ = ["PEER_PREFIX", "install_peer_routes", "load_peer_token", "new_peer_token",
           "peer_guard", "peer_token_key", "save_peer_token"]

PEER_PREFIX = f"{API_PREFIX}/cluster/peer"
"""Exempt from the access gate (the routes authenticate the peer token themselves) and
left out of the OpenAPI document (host-to-host routes, no user operation)."""


def peer_token_key(cluster_root: str) -> str:
    """The etcd key of the cluster's peer token under the cluster's root key."""
    return cluster_root + "peer_token"


def new_peer_token() -> str:
    return secrets.token_urlsafe(32)


def _file(data_dir: Path) -> Path:
    return data_dir / "cluster" / "peer.token"


def save_peer_token(data_dir: Path, token: str) -> None:
    """``<data>/cluster/peer.token``, mode 0600, atomically."""
    path = _file(data_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(".peer.token.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def load_peer_token(data_dir: Path) -> str:
    """This host's copy of the peer token; "" when it has none (not a member)."""
    try:
        return _file(data_dir).read_text().strip()
    except OSError:
        return ""


def peer_guard(data_dir: Path) -> Callable[[Request], None]:
    """A route dependency that lets a request through only with this host's cluster peer
    token (constant-time compare); anything else — no token, the admin token, a user's
    token or session, or this host in no cluster — is refused 401."""
    def peer(request: Request) -> None:
        token = load_peer_token(data_dir)
        given = request.headers.get("authorization", "")
        if not token or not given.startswith("Bearer ") or not hmac.compare_digest(
                given[len("Bearer "):].strip().encode(), token.encode()):
            raise Unauthorized("the cluster peer routes need this cluster's peer token")
    return peer


def install_peer_routes(app: FastAPI, migration: Migration) -> None:
    """The target's migration routes for member hosts, authorized by the peer token."""
    incoming = f"{PEER_PREFIX}/migrations/incoming"
    guard = [Depends(peer_guard(migration.host.data_dir))]

    @app.post(incoming, status_code=201, tags=["cluster"], dependencies=guard,
              include_in_schema=False)
    async def peer_prepare(spec: IncomingRequest, request: Request) -> dict[str, Any]:
        """A member host asks this host to get ready for a VM (as
        ``POST /migrations/incoming``)."""
        return await migration.incoming.prepare(spec, request.url.hostname or "127.0.0.1")

    @app.post(f"{incoming}/{{incoming_id}}/commit", tags=["cluster"], dependencies=guard,
              include_in_schema=False)
    async def peer_commit(incoming_id: str) -> dict[str, Any]:
        return await migration.incoming.commit(incoming_id)

    @app.delete(f"{incoming}/{{incoming_id}}", tags=["cluster"], dependencies=guard,
              include_in_schema=False)
    async def peer_abort(incoming_id: str) -> dict[str, Any]:
        return await migration.incoming.abort(incoming_id)
