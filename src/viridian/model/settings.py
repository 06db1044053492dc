"""The settings of one VM, mirroring Hyper-V's VM Settings dialog (generation 1).

Plain frozen dataclasses; field names equal the keys of the settings dict (see
:mod:`viridian.model.codec`). Constructing them does not validate: call
:func:`viridian.model.validation.validate` (``settings_from_dict`` and ``merge_settings``
do). Defaults are Hyper-V's for a new VM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from viridian.model import limits
from viridian.model.choices import (
    AdapterKind,
    BootDevice,
    ComKind,
    DiskFormat,
    DriveKind,
    FailoverPriority,
    MacMode,
    StartAction,
    StopAction,
)

DEFAULT_STARTUP_ORDER: tuple[BootDevice, ...] = (
    BootDevice.CD,
    BootDevice.IDE,
    BootDevice.NET,
    BootDevice.FLOPPY,
)


@dataclass(frozen=True)
class BiosSettings:
    num_lock: bool = False
    startup_order: tuple[BootDevice, ...] = DEFAULT_STARTUP_ORDER


@dataclass(frozen=True)
class MemorySettings:
    startup_mb: int = limits.MEMORY_DEFAULT_MB


@dataclass(frozen=True)
class ProcessorSettings:
    """``reserve_pct``/``limit_pct``/``weight`` are enforced by the host (cgroups), not QEMU."""

    count: int = limits.PROCESSOR_COUNT_DEFAULT
    reserve_pct: int = limits.RESERVE_DEFAULT_PCT
    limit_pct: int = limits.LIMIT_DEFAULT_PCT
    weight: int = limits.WEIGHT_DEFAULT
    compatibility_mode: bool = False


@dataclass(frozen=True)
class IdeDrive:
    """A drive at IDE ``controller``:``location``. An empty DVD drive has ``path`` None.

    ``format`` None means "not yet resolved": the service probes it before starting.
    """

    controller: int
    location: int
    kind: DriveKind
    path: str | None = None
    format: DiskFormat | None = None


@dataclass(frozen=True)
class ScsiDisk:
    """A hard disk on a SCSI controller (SCSI holds hard disks only)."""

    location: int
    path: str
    format: DiskFormat | None = None


@dataclass(frozen=True)
class ScsiController:
    controller: int
    disks: tuple[ScsiDisk, ...] = ()


USER_SWITCH = "user"
"""The ``switch`` of a user-mode NAT adapter: QEMU's own network, no switch of the host."""


@dataclass(frozen=True)
class NetworkAdapter:
    """``switch`` None = not connected. ``mac`` None with a dynamic MAC = not yet assigned.

    VLANs (IEEE 802.1Q), Hyper-V's modes: *access* — ``vlan_id`` is the adapter's one
    VLAN, untagged to the guest (None = untagged: the switch's default VLAN 1); *trunk* —
    ``trunk_vlans`` (non-empty) reach the guest tagged, and its untagged frames belong to
    ``native_vlan`` (None = VLAN 1). A trunk has no ``vlan_id``.
    """

    kind: AdapterKind = AdapterKind.SYNTHETIC
    switch: str | None = None
    mac_mode: MacMode = MacMode.DYNAMIC
    mac: str | None = None
    vlan_id: int | None = None
    trunk_vlans: tuple[int, ...] = ()
    native_vlan: int | None = None


@dataclass(frozen=True)
class ComPort:
    """``path`` of a pipe may be None: the socket then lives in the VM's runtime folder.

    ``address`` (``HOST:PORT``, ``[v6]:PORT``) is where a ``remote`` port connects.
    """

    kind: ComKind = ComKind.NONE
    path: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class FloppyDrive:
    """A virtual floppy (.vfd, raw 1.44 MB image); ``path`` None = no diskette inserted."""

    path: str | None = None


@dataclass(frozen=True)
class AutomaticStart:
    action: StartAction = StartAction.IF_RUNNING
    delay_s: int = 0


@dataclass(frozen=True)
class AutomaticStop:
    action: StopAction = StopAction.SAVE


@dataclass(frozen=True)
class HighAvailability:
    """The VM's failover-cluster role (docs/architecture.md, "Failover cluster"): ``ha`` on
    makes it a clustered VM restarted on another host when its host fails, by
    ``priority``, on ``preferred_hosts`` first, apart from VMs sharing an
    ``anti_affinity`` class; ``failback`` moves it back to its first preferred host;
    ``preferred_site``: hosts of that site first, another site only when none of it can
    take the VM ("" : any site); ``failback_window``: (start hour, end hour) of the host's
    local time in which failback may happen (Hyper-V's "failback between"; the end hour
    excluded, wrapping past midnight when start > end), None: immediately."""

    ha: bool = False
    priority: FailoverPriority = FailoverPriority.MEDIUM
    preferred_hosts: tuple[str, ...] = ()
    anti_affinity: tuple[str, ...] = ()
    failback: bool = False
    preferred_site: str = ""
    failback_window: tuple[int, int] | None = None


@dataclass(frozen=True)
class IntegrationServices:
    """Hyper-V's integration services, each switchable per VM; viridian provides them
    through qemu-guest-agent (``viridian.service.integration``). All are on by default
    (Hyper-V 2012 R2 leaves guest services off; the 2008 seed has no such service)."""

    operating_system_shutdown: bool = True
    time_synchronization: bool = True
    heartbeat: bool = True
    key_value_pair_exchange: bool = True
    backup: bool = True
    guest_services: bool = True


def _default_ide() -> tuple[IdeDrive, ...]:
    """Hyper-V's new VM: one empty DVD drive at IDE 1:0."""
    return (IdeDrive(controller=1, location=0, kind=DriveKind.DVD),)


@dataclass(frozen=True)
class VMSettings:
    name: str
    notes: str = ""
    bios: BiosSettings = BiosSettings()
    memory: MemorySettings = MemorySettings()
    processor: ProcessorSettings = ProcessorSettings()
    ide: tuple[IdeDrive, ...] = field(default_factory=_default_ide)
    scsi: tuple[ScsiController, ...] = ()
    network_adapters: tuple[NetworkAdapter, ...] = ()
    com1: ComPort = ComPort()
    com2: ComPort = ComPort()
    floppy: FloppyDrive = FloppyDrive()
    automatic_start: AutomaticStart = AutomaticStart()
    automatic_stop: AutomaticStop = AutomaticStop()
    integration_services: IntegrationServices = IntegrationServices()
    # Hyper-V's "Snapshot File Location": where checkpoint disks and memory states go.
    # None = the VM's own folder (``<VM folder>/checkpoints``).
    checkpoint_folder: str | None = None
    high_availability: HighAvailability = HighAvailability()

    def com(self, port: int) -> ComPort:
        """COM``port`` (1 or 2)."""
        return self.com1 if port == 1 else self.com2


def host_switches(adapters: tuple[NetworkAdapter, ...] | list[NetworkAdapter]
                  ) -> frozenset[str]:
    """The virtual switches of the host that ``adapters`` connect to (not "not
    connected", not user-mode NAT): what a host must have to run the VM."""
    return frozenset(a.switch for a in adapters if a.switch and a.switch != USER_SWITCH)
