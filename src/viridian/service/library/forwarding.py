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

A batch (``--count N``) that placement spreads over several hosts
(:mod:`viridian.library.spread`) is sent share by share (:meth:`Forwarder.spread`): each
member is asked for the VMs at its share's positions of the batch (same names, host names
and addresses as on one host), this host makes its own share, and one local job follows
them all; its result names every VM's host (``split``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viridian.access.principal import Principal
from viridian.access.quotas import Usage
from viridian.errors import AdmissionRefused, Conflict, HostError, ViridianError, as_viridian
from viridian.service.context import ServiceContext
from viridian.service.jobs import FINISHED, Job
from viridian.service.migration.cluster_peer import PEER_PREFIX, load_peer_token
from viridian.service.migration.peer import json_object
from viridian.service.tls import peer_verify

if TYPE_CHECKING:

    from viridian.service.library.placement import Placement

__all__ = ["PEER_PROVISION", "Caller", "Forwarder", "destination", "remote_error"]

PEER_PROVISION = f"{PEER_PREFIX}/provision"
PEER_DISK_USERS = f"{PEER_PREFIX}/disk-users"
PEER_USAGE = f"{PEER_PREFIX}/usage"
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
        remote_job = await self.ask(host, body, caller, planned["this_host"])

        async def follow(job: Job) -> dict[str, Any]:
            result = await self.follow(job, host, remote_job)
            return {**planned, "vms": result.get("vms", []), "remote_job": remote_job}
        job = self.context.jobs.submit("provision", None, str(body["name"]), follow)
        return {**job.to_dict(), "host": host, "remote_job": remote_job}

    async def ask(self, host: str, body: dict[str, Any], caller: Caller, source: str,
                  positions: list[int] | None = None) -> str:
        """Ask member ``host`` to provision ``body`` for ``caller`` (only the VMs at
        ``positions`` of the batch, when given: its share of a spread batch); the
        member's job id.

        :raises Conflict: the member cannot be asked (as :meth:`forward`).
        :raises ViridianError: the member's refusal, or :class:`HostError`.
        """
        member = self._reach(host)
        sent: dict[str, Any] = {"request": body, "caller": caller.to_dict(), "source": source}
        if positions is not None:
            sent["positions"] = positions
        accepted = await _call(*member, "POST", PEER_PROVISION, host, sent)
        return str(accepted["id"])

    async def follow(self, job: Job, host: str, remote_job: str) -> dict[str, Any]:
        """Wait for member ``host``'s job ``remote_job`` reporting into ``job``; its
        result, or its error raised as ours."""
        return await self._follow(job, host, self._reach(host), remote_job)

    async def spread(self, planned: dict[str, Any], body: dict[str, Any], caller: Caller,
                     here: Callable[[Job, tuple[int, ...]], Awaitable[dict[str, Any]]]
                     ) -> dict[str, Any]:
        """Provision a batch placement split over hosts (``planned["split"]``): every
        member share is asked for first (a refusal is the answer, naming the members
        already asked), then one local job makes this host's share (``here(job,
        positions)``) and follows the members' jobs. Its result is the plan with ``vms``
        (the VMs made, in batch order) and ``remote_jobs`` (host → its job). When a share
        fails the job fails naming each failed host and the VMs made and kept elsewhere
        (a member's VMs are not removed from here)."""
        this = str(planned["this_host"])
        asked: dict[str, str] = {}
        for share in planned["split"]:
            if share["host"] == this:
                continue
            try:
                asked[share["host"]] = await self.ask(share["host"], body, caller, this,
                                                      list(share["positions"]))
            except ViridianError as err:
                if asked:
                    err.message += "; already asked: " + ", ".join(
                        f"{h} (its job {j})" for h, j in asked.items())
                    err.details["asked"] = asked
                raise
        mine = next((tuple(s["positions"]) for s in planned["split"] if s["host"] == this),
                    None)

        async def run(job: Job) -> dict[str, Any]:
            parts: dict[str, Awaitable[dict[str, Any]]] = {
                h: self.follow(job, h, j) for h, j in asked.items()}
            if mine is not None:
                parts[this] = here(job, mine)
            ended = await asyncio.gather(*parts.values(), return_exceptions=True)
            results = dict(zip(parts, ended, strict=True))
            made = {n for r in results.values() if isinstance(r, dict)
                    for n in r.get("vms", [])}
            failed = {h: r for h, r in results.items() if isinstance(r, BaseException)}
            if failed:
                raise _part_failed(planned, failed, made)
            return {**planned, "vms": [n for n in planned["vms"] if n in made],
                    "remote_jobs": asked}
        job = self.context.jobs.submit("provision", None, str(body["name"]), run)
        return {**job.to_dict(), "host": planned["host"], "remote_jobs": asked}

    async def disk_users(self, disks: set[Path]) -> dict[str, list[str]]:
        """The VMs of every other member reading one of ``disks`` (host → VM names; a
        library on shared storage is every member's): asked side by side.

        :raises Conflict: a member could not be asked or did not answer (named): whether
            its VMs read the files is unknown; the caller changes nothing."""
        hosts = self.placement.other_members()
        paths = sorted(str(d) for d in disks)
        answers = await asyncio.gather(*(self._disk_users_of(h, paths) for h in hosts),
                                       return_exceptions=True)
        found: dict[str, list[str]] = {}
        for host, answer in zip(hosts, answers, strict=True):
            if isinstance(answer, BaseException):
                raise Conflict(f"cannot tell whether VMs on cluster host '{host}' read "
                               f"these files ({_why(answer)}); nothing was changed",
                               host=host)
            found[host] = answer
        return found

    async def usage_of(self, user: str) -> dict[str, Usage]:
        """What the VMs ``user`` owns on every other member add up to (host → usage):
        quotas scoped to host groups count them. Asked side by side.

        :raises Conflict: a member could not be asked or did not answer (named): the
            quota cannot be checked; nothing was changed."""
        hosts = self.placement.other_members()
        answers = await asyncio.gather(
            *(_call(*self._reach(h), "POST", PEER_USAGE, h, {"user": user}) for h in hosts),
            return_exceptions=True)
        found: dict[str, Usage] = {}
        for host, answer in zip(hosts, answers, strict=True):
            if isinstance(answer, BaseException):
                raise Conflict(f"cannot count {user}'s VMs on cluster host '{host}' for the "
                               f"host-group quota ({_why(answer)}); nothing was changed",
                               host=host)
            found[host] = _usage(answer)
        return found

    async def _disk_users_of(self, host: str, paths: list[str]) -> list[str]:
        answer = await _call(*self._reach(host), "POST", PEER_DISK_USERS, host,
                             {"paths": paths})
        vms = answer.get("vms")
        return [str(v) for v in vms] if isinstance(vms, list) else []

    def _reach(self, host: str) -> tuple[str, str, str]:
        """(URL, peer token, certificate to pin) of member ``host``."""
        url = self.placement.remote_api(host)
        token = load_peer_token(self.context.data_dir)
        if not url or not token:
            missing = "publishes no service URL" if not url else \
                "cannot be asked: this host has no cluster peer token"
            raise Conflict(f"cluster host '{host}' {missing}; nothing was changed",
                           host=host)
        return url, token, self.placement.remote_certificate(host)

    async def _follow(self, job: Job, host: str, member: tuple[str, str, str],
                      remote_job: str) -> dict[str, Any]:
        """Wait for the member's job; its result, or its error raised as ours."""
        path, lost_since = f"{PEER_PROVISION}/{remote_job}", None
        while True:
            try:
                remote = await _call(*member, "GET", path, host, None)
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


def _part_failed(planned: Mapping[str, Any], failed: Mapping[str, BaseException],
                 made: set[str]) -> ViridianError:
    """The error of a spread batch whose ``failed`` shares (host → error) failed; the
    VMs ``made`` by the other shares are kept (and named)."""
    errors = {h: as_viridian(e) for h, e in failed.items()}
    why = "; ".join(e.message if e.message.startswith(f"cluster host '{h}'") else
                    f"{h}: {e.message}" for h, e in errors.items())
    kept = [f"{n} on {s['host']}" for s in planned["split"] for n in s["vms"] if n in made]
    message = (f"the batch was not made on every host ({why}); "
               + ("made and kept: " + ", ".join(kept) if kept else "no VM was made"))
    details = {"failed": list(errors), "made": sorted(made)}
    if all(e.code == AdmissionRefused.code for e in errors.values()):
        return AdmissionRefused(message, **details)
    return HostError(message, **details)


def _why(error: BaseException) -> str:
    return as_viridian(error).message if isinstance(error, Exception) else repr(error)


def _usage(answer: Mapping[str, Any]) -> Usage:
    """A member's usage answer (missing or bad numbers count as 0)."""
    def number(key: str) -> int:
        value = answer.get(key)
        return value if isinstance(value, int) and value >= 0 else 0
    return Usage(number("vms"), number("memory_mb"), number("processors"), number("disk_mb"))


def _outcome(host: str, remote: Mapping[str, Any]) -> dict[str, Any]:
    if remote["state"] == "completed":
        result = remote.get("result")
        return dict(result) if isinstance(result, dict) else {}
    error = remote.get("error")
    raise remote_error(host, error if isinstance(error, dict) else
                       {"code": HostError.code, "message": f"the job was {remote['state']}"})


async def _call(url: str, token: str, certificate: str, method: str, path: str, host: str,
                body: dict[str, Any] | None) -> dict[str, Any]:
    """One peer request to ``url`` with the peer token, the member's published
    ``certificate`` pinned (``service.tls.peer_verify``); the JSON answer.

    :raises HostError: no answer. :raises ViridianError: the member's refusal."""
    import httpx  # on first use, as the migration peer client

    try:
        async with httpx.AsyncClient(base_url=url, timeout=_TIMEOUT_S,
                                     verify=peer_verify(url, certificate), headers={
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

