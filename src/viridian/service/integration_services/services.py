"""Hyper-V's integration services, provided through qemu-guest-agent (virtio-serial).

Each is switched per VM in ``settings.integration_services`` (changeable while the VM
runs, like in Hyper-V). What each does here:

* **operating_system_shutdown** — a graceful shut down asks the agent
  (``guest-shutdown``) when this is on and the agent answers; otherwise the ACPI power
  button (``LiveVM._ask_guest_to_shut_down``).
* **time_synchronization** — after a resume and after a restore from Saved, the guest's
  clock is set to the host's (``guest-set-time``, which also writes the guest's RTC).
* **heartbeat** — the agent is pinged every :data:`HEARTBEAT_INTERVAL_S`. Health, with
  Hyper-V's words: ``"No Contact"`` until the first answer after QEMU started (or the
  service found it again), ``"OK"`` while answers come, ``"Lost Communication"`` after
  :data:`HEARTBEAT_MISSES` unanswered pings in a row following an answer, ``"Paused"``
  while the VM is Paused or being paused (its guest cannot answer; Hyper-V shows no
  heartbeat then). ``null`` while the VM is not running or the service is off. Pinged
  whenever the guest executes — Running and also ShuttingDown (a shut down asked right
  after a start waits on a guest that is still booting: its agent's first answer must
  show at once, not after the shut down ended).
* **key_value_pair_exchange** — guest → host: host name, OS (``guest-get-osinfo``) and
  IP addresses per interface, read at the first heartbeat and every
  :data:`KVP_REFRESH_S`, shown in ``vm show`` under ``integration.guest``. Host →
  guest: items the admin sets (``PUT .../integration/kvp``), kept in
  ``<VM folder>/kvp-host.json`` and written into the guest as ``/run/viridian-kvp``,
  one ``key=value`` line each (the file is rewritten at every refresh, so it comes back
  after a guest reboot — Hyper-V's Linux KVP daemon keeps its host pool in
  ``/var/lib/hyperv/.kvp_pool_0`` likewise).
* **backup** — :meth:`IntegrationServices.freeze` / :meth:`~IntegrationServices.thaw`
  (``guest-fsfreeze-*``), the volume-snapshot hook for checkpoints and backup.
* **guest_services** — run a command in the guest without any network
  (:meth:`~IntegrationServices.exec`, like PowerShell Direct) and copy a file from the
  host into the guest (:meth:`~IntegrationServices.copy_file`, like Copy-VMFile).

Every verb raises :class:`Conflict` when the VM is not running or the service is
switched off (naming how to switch it on), and :class:`HostError` when the guest agent
does not answer or refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import FastAPI

from viridian.errors import BadRequest, Conflict, HostError, ViridianError
from viridian.model import IntegrationServices as ServiceSwitches
from viridian.model.states import VMState
from viridian.qemu.errors import GuestAgentError, GuestAgentTimeout
from viridian.qemu.guest_agent import GuestAgent, GuestExecResult
from viridian.service.capability import Capability
from viridian.service.context import ServiceContext
from viridian.service.integration_services.routes import install_integration_routes

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVICES = tuple(ServiceSwitches.__dataclass_fields__)
HEARTBEAT_INTERVAL_S = 2.0
HEARTBEAT_TIMEOUT_S = 2.0
FREEZE_PROBE_TIMEOUT_S = 10.0  # a loaded host's agent answers a ping well within this
HEARTBEAT_MISSES = 3
KVP_REFRESH_S = 30.0
TIME_SYNC_ATTEMPTS = 10
HOST_KVP_FILE = "kvp-host.json"
GUEST_KVP_PATH = "/run/viridian-kvp"
MAX_COPY_BYTES = 256 * 1024 * 1024
KVP_KEY_MAX = 512


class Health(StrEnum):
    OK = "OK"
    NO_CONTACT = "No Contact"
    LOST = "Lost Communication"
    PAUSED = "Paused"


GUEST_EXECUTES = frozenset({VMState.RUNNING, VMState.SHUTTING_DOWN})
"""States in which the guest runs, so its agent can answer and is pinged."""
GUEST_HALTED = frozenset({VMState.PAUSED, VMState.PAUSING, VMState.SAVING})
"""States in which QEMU runs but the guest's processors stand still: heartbeat "Paused"."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class _VMChannel:
    """What the service knows of one running VM's guest agent."""

    health: Health = Health.NO_CONTACT
    misses: int = 0
    last_contact: str | None = None
    guest: dict[str, Any] = field(default_factory=dict)
    kvp_at: float = 0.0
    time_sync: dict[str, Any] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class IntegrationServices(Capability):
    """The integration services of every VM; one per service."""

    name = "integration_services"

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self._channels: dict[str, _VMChannel] = {}

    def install_routes(self, app: FastAPI) -> None:
        install_integration_routes(app, self, self.context)

    # --- VM events (viridian.service.capability) ------------------------------------------

    def adopted(self, live: LiveVM) -> None:
        """QEMU runs (started, restored, found again): start watching its agent."""
        self.exited(live)
        channel = _VMChannel()
        self._channels[live.record.id] = channel
        channel.task = asyncio.get_running_loop().create_task(
            self._heartbeat(live, channel), name=f"heartbeat-{live.record.name}")

    def exited(self, live: LiveVM) -> None:
        channel = self._channels.pop(live.record.id, None)
        if channel and channel.task:
            channel.task.cancel()

    def resumed(self, live: LiveVM, restored: bool) -> None:
        """The guest ran on after a pause or a restore: sync its clock (if switched on)."""
        channel = self._channels.get(live.record.id)
        if channel is not None and enabled(live, "time_synchronization"):
            asyncio.get_running_loop().create_task(self._sync_time(live, channel, restored))

    def describe(self, live: LiveVM) -> dict[str, Any]:
        channel = self._channels.get(live.record.id)
        if channel is None or live.state is VMState.OFF:
            channel = None
        heartbeat = _heartbeat_shown(live, channel)
        return {
            "heartbeat": heartbeat,
            "integration": {
                "services": switches(live),
                "heartbeat": heartbeat,
                "last_contact": channel.last_contact if channel else None,
                "guest": dict(channel.guest) if channel else {},
                "host_kvp": read_host_kvp(live),
                "time_sync": dict(channel.time_sync) if channel else {},
            },
        }

    # --- verbs -------------------------------------------------------------------------

    async def exec(self, live: LiveVM, argv: Sequence[str], stdin: bytes | None,
                   timeout_s: float) -> GuestExecResult:
        agent = self._agent(live, "guest_services")
        if not argv:
            raise BadRequest("nothing to run: give a command and its arguments")
        return await _agent_call(live, "run a command", agent.exec(argv, timeout_s, stdin))

    async def copy_file(self, live: LiveVM, guest_path: str, data: bytes,
                        overwrite: bool) -> dict[str, Any]:
        agent = self._agent(live, "guest_services")
        if not guest_path.startswith("/"):
            raise BadRequest(f"guest path {guest_path!r} must be absolute (start with /)")
        if len(data) > MAX_COPY_BYTES:
            raise BadRequest(f"file of {len(data)} bytes is too large; allowed: at most "
                             f"{MAX_COPY_BYTES} bytes")
        if not overwrite and await _guest_file_exists(agent, guest_path):
            raise Conflict(f"{guest_path} already exists in VM '{live.record.name}'; copy with "
                           "overwrite (--force) to replace it; nothing was changed",
                           vm=live.record.name, path=guest_path)
        written = await _agent_call(live, "copy a file", agent.write_file(guest_path, data))
        return {"path": guest_path, "bytes": written}

    async def freeze(self, live: LiveVM) -> int:
        """Freeze the guest's file systems (backup). Thaw them with :meth:`thaw` soon.

        The agent is pinged first: a guest without a running agent (no OS yet, agent not
        installed) is refused within :data:`FREEZE_PROBE_TIMEOUT_S` instead of after the
        freeze's own 60 s, so a backup or checkpoint of it goes crash-consistent at once.
        """
        agent = self._agent(live, "backup")
        if not await agent.ping(timeout=FREEZE_PROBE_TIMEOUT_S):
            raise HostError(f"cannot freeze file systems in VM '{live.record.name}': its "
                            f"guest agent did not answer within {FREEZE_PROBE_TIMEOUT_S:g} s",
                            vm=live.record.name)
        return await _agent_call(live, "freeze file systems", agent.fsfreeze())

    async def thaw(self, live: LiveVM) -> int:
        agent = self._agent(live, "backup")
        return await _agent_call(live, "thaw file systems", agent.fsthaw())

    async def freeze_status(self, live: LiveVM) -> str:
        agent = self._agent(live, "backup")
        return await _agent_call(live, "read the freeze status", agent.fsfreeze_status())

    @contextlib.asynccontextmanager
    async def frozen(self, live: LiveVM) -> Any:
        """``async with services.frozen(live): ...`` — file systems frozen inside."""
        count = await self.freeze(live)
        try:
            yield count
        finally:
            await self.thaw(live)

    async def set_host_kvp(self, live: LiveVM, items: dict[str, str | None]) -> dict[str, str]:
        """Add, change (value) or remove (None) host → guest items; pushed at once when the
        VM runs with the service on. Returns all items."""
        for key, value in items.items():
            _check_kvp(key, value)
        merged = {**read_host_kvp(live), **{k: v for k, v in items.items() if v is not None}}
        merged = {k: v for k, v in merged.items() if items.get(k, "") is not None}
        _write_json(Path(live.record.folder) / HOST_KVP_FILE, merged)
        live.view_changed()  # the vm object shows host_kvp (service/vms/listing.py)
        channel = self._channels.get(live.record.id)
        if channel and channel.health is Health.OK and enabled(live, "key_value_pair_exchange"):
            await self._push_host_kvp(live)
        return merged

    # --- internals ---------------------------------------------------------------------

    def _agent(self, live: LiveVM, service: str) -> GuestAgent:
        if not enabled(live, service):
            raise Conflict(
                f"the {service.replace('_', ' ')} integration service of VM "
                f"'{live.record.name}' is off; switch it on with 'viridian vm integration "
                f"{live.record.name} --enable {service}'", vm=live.record.name, service=service)
        if live.worker is None or live.state is not VMState.RUNNING:
            raise Conflict(f"VM '{live.record.name}' is {live.state.value}; integration "
                           "services need it Running", vm=live.record.name,
                           state=live.state.value)
        return live.worker.guest_agent

    async def _heartbeat(self, live: LiveVM, channel: _VMChannel) -> None:
        while True:
            if live.worker is not None and live.state in GUEST_EXECUTES and (
                    enabled(live, "heartbeat") or enabled(live, "key_value_pair_exchange")):
                await self._beat(live, live.worker.guest_agent, channel)
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    async def _beat(self, live: LiveVM, agent: GuestAgent, channel: _VMChannel) -> None:
        if await agent.ping(timeout=HEARTBEAT_TIMEOUT_S):
            channel.health, channel.misses, channel.last_contact = Health.OK, 0, _now()
            if enabled(live, "key_value_pair_exchange") and \
                    time.monotonic() - channel.kvp_at >= KVP_REFRESH_S:
                await self._exchange_kvp(live, agent, channel)
            return
        channel.misses += 1
        if channel.health is Health.OK and channel.misses >= HEARTBEAT_MISSES:
            channel.health = Health.LOST
            log.warning("heartbeat of VM %s lost", live.record.name)

    async def _exchange_kvp(self, live: LiveVM, agent: GuestAgent,
                            channel: _VMChannel) -> None:
        channel.kvp_at = time.monotonic()
        try:
            channel.guest = {
                "host_name": await agent.host_name(),
                "os": await agent.os_info(),
                "network": _addresses(await agent.network_interfaces()),
                "read_at": _now(),
            }
            await self._push_host_kvp(live)
        except (ViridianError, GuestAgentError) as err:
            log.info("key-value pair exchange with VM %s failed: %s", live.record.name, err)

    async def _push_host_kvp(self, live: LiveVM) -> None:
        items = read_host_kvp(live)
        if items and live.worker is not None:
            text = "".join(f"{k}={v}\n" for k, v in sorted(items.items()))
            await live.worker.guest_agent.write_file(GUEST_KVP_PATH, text.encode())

    async def _sync_time(self, live: LiveVM, channel: _VMChannel, restored: bool) -> None:
        for _ in range(TIME_SYNC_ATTEMPTS):
            worker = live.worker
            if worker is None:
                return
            try:
                await worker.guest_agent.set_time(timeout=HEARTBEAT_TIMEOUT_S * 2)
            except GuestAgentError as err:
                if "hwclock" in str(err):  # the system clock is set; only the RTC copy failed
                    break
                channel.time_sync = {"error": str(err), "at": _now()}
                await asyncio.sleep(1.0)
                continue
            break
        else:
            return
        channel.time_sync = {"synced_at": _now(),
                             "after": "restore" if restored else "resume"}


def _heartbeat_shown(live: LiveVM, channel: _VMChannel | None) -> str | None:
    """The heartbeat column: None when off or switched off, "Paused" while the guest's
    processors stand still, else the channel's health."""
    if channel is None or not enabled(live, "heartbeat"):
        return None
    if live.state in GUEST_HALTED:
        return Health.PAUSED.value
    return channel.health.value


def switches(live: LiveVM) -> dict[str, bool]:
    """The VM's integration service switches, defaults filled in."""
    stored = live.record.settings.integration_services
    return {name: bool(getattr(stored, name)) for name in SERVICES}


def enabled(live: LiveVM, service: str) -> bool:
    return switches(live)[service]


def read_host_kvp(live: LiveVM) -> dict[str, str]:
    try:
        data = json.loads((Path(live.record.folder) / HOST_KVP_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _check_kvp(key: str, value: str | None) -> None:
    if not key or len(key) > KVP_KEY_MAX or any(c in key for c in "=\n\0"):
        raise BadRequest(f"invalid key-value pair key {key!r}; allowed: 1..{KVP_KEY_MAX} "
                         "characters without '=', newline or NUL")
    if value is not None and any(c in value for c in "\n\0"):
        raise BadRequest(f"invalid value for key {key!r}: it must not contain newline or NUL")


def _write_json(path: Path, data: dict[str, str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


def _addresses(interfaces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": i.get("name"), "mac": i.get("hardware-address"),
             "ip_addresses": [f"{a.get('ip-address')}/{a.get('prefix')}"
                              for a in i.get("ip-addresses", [])]}
            for i in interfaces if i.get("name") != "lo"]


async def _agent_call(live: LiveVM, what: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except GuestAgentError as err:
        raise HostError(f"cannot {what} in VM '{live.record.name}': {err}",
                        vm=live.record.name) from err


async def _guest_file_exists(agent: GuestAgent, path: str) -> bool:
    """Whether ``path`` opens for reading in the guest (qemu-ga has no stat verb)."""
    try:
        await agent.close_file(await agent.open_file(path, "r"))
    except GuestAgentTimeout:
        raise
    except GuestAgentError:
        return False
    return True
