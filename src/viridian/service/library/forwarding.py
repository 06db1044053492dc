"""Provisioning on the cluster host placement picks (docs/architecture.md, "Library and
provisioning"; docs/api.md, "Cluster peer routes").

When the best-rated host is another Up member, this host forwards the request to that
member's service (the URL it publishes in its host record) on the peer route
``POST /api/v1/cluster/peer/provision`` with the cluster's peer token — never the admin
token, never the caller's credentials — naming the caller (:class:`Caller`). The member
authorizes that user itself against its own access data, provisions on itself only and
answers with its job; this host answers the caller at once with a local ``provision`` job
that follows the member's job (``GET .../peer/provision/{id}``) and ends as it ends: its
result is this host's plan (every host's rating) with the VMs made and ``host`` the
member. A refusal of the member comes back with the member's HTTP status, code and
message (:func:`remote_error`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from viridian.access.principal import Principal
from viridian.errors import Conflict, HostError, ViridianError
from viridian.service.context import ServiceContext
from viridian.service.jobs import FINISHED, Job
from viridian.service.migration.cluster_peer import PEER_PREFIX, load_peer_token
from viridian.service.migration.peer import json_object

if TYPE_CHECKING:

    from viridian.service.library.placement import Placement

__all__ = ["PEER_PROVISION", "Caller", "Forwarder", "destination", "remote_error"]

PEER_PROVISION = f"{PEER_PREFIX}/provision"
POLL_S = 1.0
LOST_AFTER_S = 120.0
"""How long the member may stay unreachable before the following job fails (the VMs may
still be made there: the message names the member's job)."""
_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Caller:
    """Whom a forwarded request is for: ``admin`` (this host's admin token: the member
    treats it as its own, no owner, no quota — the peer token already lets a member move
    any VM into it) or the user ``user`` (whose API token may carry ``token_role``)."""

    user: str
    admin: bool = False
    token_role: str | None = None

    @classmethod
    def of(cls, principal: Principal | None) -> Caller:
        """``principal`` (None: a service without the access gate, so the admin)."""
        if principal is None or principal.bootstrap:
            return cls("admin-token", admin=True)
        return cls(principal.user, token_role=principal.token_role)

    def to_dict(self) -> dict[str, Any]:
        return {"user": self.user, "admin": self.admin, "token_role": self.token_role}


def destination(planned: Mapping[str, Any]) -> str | None:
    """The member host to forward a placed request to; None when placement picked this
    host (``this_host``)."""
    host = planned.get("host")
    return None if host in (None, planned.get("this_host")) else str(host)


def _codes() -> dict[str, type[ViridianError]]:
    found: dict[str, type[ViridianError]] = {}
    todo: list[type[ViridianError]] = [ViridianError]
    while todo:
        kind = todo.pop()
        found.setdefault(kind.code, kind)
        todo += kind.__subclasses__()
    return found


def remote_error(host: str, error: Mapping[str, Any], status: int | None = None
                 ) -> ViridianError:
    """A member's error object (``{"code", "message", "details"}``) as our error with the
    member's code, status (``status``, else the code's) and message, prefixed with the
    host. A 401 is the member refusing this host's peer token, not the caller: a host
    error then."""
    kind = _codes().get(str(error.get("code")), HostError)
    details = error.get("details")
    message = str(error.get("message") or f"HTTP {status}")
    if status == 401:
        return HostError(f"cluster host '{host}' refused this host's cluster peer token "
                         f"({message}); nothing was made there", host=host)
    made = ViridianError(f"cluster host '{host}': {message}",
                         **{**(details if isinstance(details, dict) else {}), "host": host})
    made.http_status = status if status is not None else kind.http_status
    made.exit_code, made.code = kind.exit_code, kind.code
    return made


class Forwarder:
    """This host's side of forwarding (module docstring)."""

    def __init__(self, context: ServiceContext, placement: Placement) -> None:
        self.context, self.placement = context, placement

    async def forward(self, host: str, body: dict[str, Any], caller: Caller,
                      planned: dict[str, Any]) -> dict[str, Any]:
        """Ask member ``host`` to provision ``body`` (a ``POST /provision`` body) for
        ``caller``; the answer is a local job following the member's, with ``host`` and
        ``remote_job``.

        :raises Conflict: the member publishes no service URL, or this host has no peer
            token; nothing was changed.
        :raises ViridianError: the member's refusal (its status, code and message) or
            :class:`HostError` when it did not answer.
        """
        url, token = self._reach(host)
        sent = {"request": body, "caller": caller.to_dict(), "source": planned["this_host"]}
        accepted = await _call(url, token, "POST", PEER_PROVISION, host, sent)
        remote_job = str(accepted["id"])

        async def follow(job: Job) -> dict[str, Any]:
            result = await self._follow(job, host, url, token, remote_job)
            return {**planned, "vms": result.get("vms", []), "remote_job": remote_job}
        job = self.context.jobs.submit("provision", None, str(body["name"]), follow)
        return {**job.to_dict(), "host": host, "remote_job": remote_job}

    def _reach(self, host: str) -> tuple[str, str]:
        url = self.placement.remote_api(host)
        token = load_peer_token(self.context.data_dir)
        if not url or not token:
            missing = "publishes no service URL" if not url else \
                "cannot be asked: this host has no cluster peer token"
            raise Conflict(f"placement picked cluster host '{host}', which {missing}; "
                           "nothing was changed", host=host)
        return url, token

    async def _follow(self, job: Job, host: str, url: str, token: str,
                      remote_job: str) -> dict[str, Any]:
        """Wait for the member's job; its result, or its error raised as ours."""
        path, lost_since = f"{PEER_PROVISION}/{remote_job}", None
        while True:
            try:
                remote = await _call(url, token, "GET", path, host, None)
            except HostError:  # unreachable for a while: keep asking until LOST_AFTER_S
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > LOST_AFTER_S:
                    raise HostError(f"cluster host '{host}' stopped answering about its "
                                    f"provision job {remote_job}; the VMs may still be "
                                    f"made there: check that job on {host}", host=host,
                                    remote_job=remote_job) from None
                await asyncio.sleep(POLL_S)
                continue
            lost_since = None
            job.report(float(remote.get("progress", 0)), f"on {host}: {remote.get('message')}")
            if remote.get("state") in FINISHED:
                return _outcome(host, remote)
            await asyncio.sleep(POLL_S)


def _outcome(host: str, remote: Mapping[str, Any]) -> dict[str, Any]:
    if remote["state"] == "completed":
        result = remote.get("result")
        return dict(result) if isinstance(result, dict) else {}
    error = remote.get("error")
    raise remote_error(host, error if isinstance(error, dict) else
                       {"code": HostError.code, "message": f"the job was {remote['state']}"})


async def _call(url: str, token: str, method: str, path: str, host: str,
                body: dict[str, Any] | None) -> dict[str, Any]:
    """One peer request to ``url`` with the peer token; the JSON answer.

    :raises HostError: no answer. :raises ViridianError: the member's refusal."""
    import httpx  # on first use, as the migration peer client

    try:
        async with httpx.AsyncClient(base_url=url, timeout=_TIMEOUT_S, headers={
                "Authorization": f"Bearer {token}"}) as client:
            reply = await client.request(method, path, json=body)
    except httpx.HTTPError as err:
        raise HostError(f"cluster host '{host}' ({url}) did not answer {method} {path}: "
                        f"{err}", host=host) from err
    data = json_object(reply)
    if reply.is_success:
        return data
    error = data.get("error")
    raise remote_error(host, error if isinstance(error, dict) else {}, reply.status_code)

