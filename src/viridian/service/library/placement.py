"""The candidate hosts of placement and their facts (docs/architecture.md, "Library and
provisioning"; the rules are :mod:`viridian.library.placement`).

- **This host**: the memory its admission rules would still give (host memory - assigned
  - reserve - the minimum kept free, at most what the kernel reports available), its CPU
  busy % over the last hour of the counter history (root virtual processor + the VMs'
  virtual processors), the data folder's file system and the busy % of its disk over the
  same hour (100 - ``PhysicalDisk % Idle Time`` of the whole disk holding the folder, or
  of ``_Total`` when the folder is on no block device), its virtual switches, its VMs.
- **In a cluster**: every other member whose host record (read by the cluster agent every
  second from etcd) says Up, with the facts that host published: the cluster agent adds
  this host's latest facts (:func:`with_facts`) to the record it publishes. The facts are
  gathered on the event loop every :data:`REFRESH_S` (the counter history and the catalog
  are the loop's) and only read by the agent's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from viridian.cluster.model import HostRecord, HostState
from viridian.cluster.placement import record_facts
from viridian.counters import paths as P
from viridian.counters.formulas import RUN_TIME
from viridian.counters.history import History
from viridian.host.admission import MIN_FREE_MB
from viridian.host.resources import read_resources
from viridian.library.placement import HostFacts, host_cpu_busy
from viridian.service.cluster.config import ClusterFolder
from viridian.service.context import ServiceContext
from viridian.service.switches.service import SwitchStore

if TYPE_CHECKING:
    from viridian.service.capability import Capability
    from viridian.service.cluster.agent import HostAgent
    from viridian.service.counters.sampler import CountersCapability

__all__ = ["CPU_WINDOW_S", "Placement", "PlacementHost", "record_facts", "with_facts"]

CPU_WINDOW_S = 3600.0
REFRESH_S = 10.0
LOCALHOST = "localhost"

_PUBLISHED: dict[Path, HostFacts] = {}
"""This host's latest facts per data folder, for the cluster agent's thread."""


class PlacementHost(ServiceContext, Protocol):
    """The core's parts placement reads besides the capability context."""

    @property
    def counters(self) -> CountersCapability: ...

    @property
    def capabilities(self) -> tuple[Capability, ...]: ...


class Placement:
    """The candidate hosts of one service (see the module docstring)."""

    def __init__(self, context: PlacementHost) -> None:
        self.context = context
        self._task: asyncio.Task[None] | None = None

    def candidates(self) -> tuple[str, list[HostFacts]]:
        """This host's name (its cluster host name, else ``localhost``) and the facts of
        every candidate host, this host first."""
        agent = self._agent()
        here = agent.config.host if agent is not None else LOCALHOST
        hosts = [replace(self.this_host(), name=here)]
        if agent is not None and agent.view is not None:
            hosts += [record_facts(r) for r in agent.view.hosts
                      if r.name != here and r.state is HostState.UP
                      and r.name not in agent.view.paused]
        return here, hosts

    def other_members(self) -> list[str]:
        """The other hosts of this host's cluster whose records live now (Up or Paused),
        by name; empty outside a cluster."""
        agent = self._agent()
        if agent is None or agent.view is None:
            return []
        return sorted(r.name for r in agent.view.hosts if r.name != agent.config.host)

    def remote_api(self, host: str) -> str:
        """The service URL cluster host ``host`` publishes ("" when unknown)."""
        record = self._record(host)
        return record.api if record is not None else ""

    def remote_certificate(self, host: str) -> str:
        """The certificate cluster host ``host`` publishes with its URL ("" when unknown
        or plain HTTP): pinned by the forwarding client."""
        record = self._record(host)
        return record.certificate if record is not None else ""

    def _record(self, host: str) -> HostRecord | None:
        agent = self._agent()
        view = agent.view if agent is not None else None
        return next((r for r in (view.hosts if view else ()) if r.name == host), None)

    def this_host(self) -> HostFacts:
        context = self.context
        load, res = context.host_load(), read_resources()
        usage = shutil.disk_usage(context.data_dir)
        admits = (load.memory_mb - load.assigned_memory_mb - context.policy.host_reserve_mb
                  - MIN_FREE_MB)
        switches = frozenset(s.name for s in SwitchStore(context.catalog).load())
        busy, window = self.cpu_busy()
        return HostFacts(LOCALHOST, res.memory_mb,
                         max(0, min(res.memory_available_mb, admits)), busy, usage.total,
                         usage.free, switches,
                         frozenset(vm.record.name for vm in context.vms().values()), window,
                         disk_busy(context.counters.sampler.history,
                                   data_disk(context.data_dir), time.time()))

    def cpu_busy(self) -> tuple[float | None, float]:
        """The host's CPU busy % over the last hour of the counter history, and how many
        seconds of it the history holds (less after a service start)."""
        history, now = self.context.counters.sampler.history, time.time()
        kept = history.since(now - CPU_WINDOW_S)
        if not kept:
            return None, CPU_WINDOW_S
        root = history.average(P.path(P.ROOT_VP, RUN_TIME, P.TOTAL), CPU_WINDOW_S, now)
        vps = history.averages(P.path(P.VP, RUN_TIME, "*"), CPU_WINDOW_S, now)
        vps.pop(P.path(P.VP, RUN_TIME, P.TOTAL), None)
        span = min(CPU_WINDOW_S, now - kept[0].time + kept[0].interval_s)
        return host_cpu_busy(root, list(vps.values()), os.cpu_count() or 1), span

    # --- publishing this host's facts for the cluster agent ----------------------------

    def start(self) -> None:
        """Refresh the published facts every :data:`REFRESH_S` while in a cluster (called
        on the event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        folder = ClusterFolder(self.context.data_dir)
        while True:
            if folder.config_file.exists():
                with contextlib.suppress(Exception):  # never let a bad read end the loop
                    _PUBLISHED[self.context.data_dir] = self.this_host()
            await asyncio.sleep(REFRESH_S)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        _PUBLISHED.pop(self.context.data_dir, None)

    def _agent(self) -> HostAgent | None:
        from viridian.service.cluster.capability import ClusterCapability
        cluster = next((c for c in self.context.capabilities
                        if isinstance(c, ClusterCapability)), None)
        return cluster.agent if cluster is not None else None


def with_facts(record: HostRecord, data_dir: Path) -> HostRecord:
    """``record`` with this host's latest placement facts (unchanged before the first
    refresh): what the cluster agent publishes."""
    facts = _PUBLISHED.get(data_dir)
    if facts is None:
        return record
    return replace(record, cpu_busy_pct=facts.cpu_busy_pct,
                   storage_total_bytes=facts.storage_total_bytes,
                   storage_free_bytes=facts.storage_free_bytes,
                   switches=tuple(sorted(facts.networks)),
                   disk_busy_pct=facts.disk_busy_pct)


def data_disk(folder: Path) -> str:
    """The whole disk holding ``folder`` (its counter instance: ``sda``, ``vda``...), found
    through ``/sys/dev/block/MAJOR:MINOR`` (a partition's parent); ``_Total`` when the
    folder is on no block device (tmpfs, overlay)."""
    try:
        dev = os.stat(folder).st_dev
        node = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}").resolve(strict=True)
    except OSError:
        return P.TOTAL
    return node.parent.name if (node / "partition").exists() else node.name


def disk_busy(history: History, disk: str, now: float) -> float | None:
    """100 - ``PhysicalDisk(disk)\\% Idle Time`` averaged over the last hour (``_Total``
    when that disk has no counters); None when none are kept."""
    for instance in dict.fromkeys((disk, P.TOTAL)):
        idle = history.average(P.path(P.DISK, "% Idle Time", instance), CPU_WINDOW_S, now)
        if idle is not None:
            return max(0.0, min(100.0, 100.0 - idle))
    return None
