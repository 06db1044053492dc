"""Collecting one :class:`Snapshot`: the host from ``/proc``, each VM from its QEMU process.

Per VM: vCPU run time from the vCPU threads' ``schedstat`` (:mod:`.procfs`), disk I/O from
QMP ``query-blockstats`` on the VM's monitor, adapter traffic from the guest agent.

Cost: the disk query is one round trip per VM with an image, on the worker's persistent
QMP connection (no connect, no negotiation per sample); QEMU answers every disk in one
reply. With 10 running VMs with disks at a 1 s interval the sampling costs the service
about 0.5 % of one core (bench/bench_counters.py; ``virsh domstats`` on the same guests
costs libvirt about 2.7 %). Most of the client's former cost was qemu.qmp formatting each
message for a debug log line that was never written (fixed in :mod:`viridian.qemu.monitor`).

Network counters: QEMU 7.2 keeps no per-adapter counters that QMP can read for a
user-mode (NAT) netdev — ``query-rx-filter`` shows only the receive filter, ``query-stats``
serves KVM statistics only. The counters therefore come from inside the guest through
qemu-guest-agent (``guest-network-get-interfaces`` statistics), matched to adapters by
MAC address; a VM without a responding agent has no adapter counters. A non-answering
agent is asked again only after :data:`AGENT_BACKOFF_S`. (Tap-backed adapters of future
virtual switches can be read from ``/sys/class/net/<tap>/statistics`` instead.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from viridian.counters import procfs
from viridian.counters.samples import BlockStat, NicStat, Snapshot, VMSample
from viridian.errors import ViridianError
from viridian.qemu.guest_agent import GuestAgent
from viridian.qemu.monitor import Monitor

AGENT_TIMEOUT_S = 0.5
AGENT_BACKOFF_S = 15.0
DISK_RESCAN_S = 60.0


@dataclass
class VMTarget:
    """What the collector needs to know about one defined VM."""

    vm_id: str
    name: str
    processors: int
    memory_mb: int
    pid: int | None = None
    monitor: Monitor | None = None
    agent: GuestAgent | None = None
    nic_macs: dict[str, str] = field(default_factory=dict)
    """Adapter id (``nic0``) → MAC address in lower case, for connected adapters."""
    guest_running: bool = False
    """The guest executes (not paused): only then can its agent answer."""
    disk_ids: frozenset[str] | None = None
    """Ids of the drives holding an image (``ide0-0``, ``scsi1-3``, ``floppy0``); only
    these are reported, and QMP is not asked at all when there is none. None: every
    drive QEMU reports."""


class Collector:
    """Takes snapshots; keeps what is worth caching between them (thread maps, disk list,
    agent back-off). Not thread-safe; one per service."""

    def __init__(self) -> None:
        self._threads: dict[int, procfs.ThreadMap] = {}
        self._agent_quiet_until: dict[str, float] = {}
        self._disks: set[str] = set()
        self._disks_read_at = -DISK_RESCAN_S

    async def snapshot(self, targets: list[VMTarget]) -> Snapshot:
        """Host and VMs now. Never raises for a VM that stops meanwhile (it shows Off)."""
        vms = await asyncio.gather(*(self._vm(t) for t in targets))
        host = procfs.read_host(self._whole_disks())
        live = {t.pid for t in targets if t.pid is not None}
        for pid in set(self._threads) - live:
            del self._threads[pid]
        return Snapshot(time.time(), host, tuple(vms))

    def _whole_disks(self) -> set[str]:
        if time.monotonic() - self._disks_read_at >= DISK_RESCAN_S:
            self._disks, self._disks_read_at = procfs.whole_disks(), time.monotonic()
        return self._disks

    async def _vm(self, t: VMTarget) -> VMSample:
        off = VMSample(t.vm_id, t.name, t.processors, t.memory_mb, None)
        if t.pid is None:
            return off
        disks, nics = await asyncio.gather(self._block(t), self._network(t))
        try:
            threads = self._threads.get(t.pid) or procfs.ThreadMap.scan(t.pid)
            self._threads[t.pid] = threads
            vcpu = procfs.read_vcpu_ns(threads)
            process_ns, rss_kb = procfs.read_process(t.pid)
        except OSError:
            self._threads.pop(t.pid, None)
            return off
        return VMSample(t.vm_id, t.name, t.processors, t.memory_mb, t.pid, vcpu, process_ns,
                        rss_kb, disks, nics)

    async def _block(self, t: VMTarget) -> dict[str, BlockStat]:
        if t.monitor is None or (t.disk_ids is not None and not t.disk_ids):
            return {}
        try:
            raw = await t.monitor.block_stats()
        except ViridianError:
            return {}
        return {dev: block_stat(s) for dev, s in raw.items()
                if t.disk_ids is None or dev in t.disk_ids}

    async def _network(self, t: VMTarget) -> dict[str, NicStat]:
        now = time.monotonic()
        if (t.agent is None or not t.nic_macs or not t.guest_running
                or self._agent_quiet_until.get(t.vm_id, 0.0) > now):
            return {}
        try:
            by_mac = await t.agent.interface_statistics(timeout=AGENT_TIMEOUT_S)
        except ViridianError:
            self._agent_quiet_until[t.vm_id] = now + AGENT_BACKOFF_S
            with contextlib.suppress(ViridianError):
                await t.agent.close()
            return {}
        self._agent_quiet_until.pop(t.vm_id, None)
        return {nic: nic_stat(by_mac[mac]) for nic, mac in t.nic_macs.items() if mac in by_mac}


def block_stat(raw: dict[str, int]) -> BlockStat:
    """A :class:`BlockStat` from ``BlockDeviceStats`` members (missing ones count as 0)."""
    return BlockStat(raw.get("rd_bytes", 0), raw.get("wr_bytes", 0), raw.get("rd_operations", 0),
                     raw.get("wr_operations", 0), raw.get("rd_total_time_ns", 0),
                     raw.get("wr_total_time_ns", 0))


def nic_stat(raw: dict[str, int]) -> NicStat:
    """A :class:`NicStat` from ``GuestNetworkInterfaceStat`` members (guest's view)."""
    return NicStat(raw.get("rx-bytes", 0), raw.get("tx-bytes", 0), raw.get("rx-packets", 0),
                   raw.get("tx-packets", 0))
