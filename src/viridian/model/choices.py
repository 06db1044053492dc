"""The enumerated values of VM settings; each ``.value`` is the string used in dicts."""

from __future__ import annotations

from enum import StrEnum


class BootDevice(StrEnum):
    """An entry of the BIOS startup order."""

    CD = "cd"
    IDE = "ide"
    NET = "net"  # legacy network adapters only, as in Hyper-V
    FLOPPY = "floppy"


class DriveKind(StrEnum):
    HARD_DISK = "hard_disk"
    DVD = "dvd"


class DiskFormat(StrEnum):
    """Image formats handed to QEMU explicitly (``vpc`` is VHD)."""

    VPC = "vpc"
    VHDX = "vhdx"
    QCOW2 = "qcow2"
    RAW = "raw"


class AdapterKind(StrEnum):
    SYNTHETIC = "synthetic"  # virtio-net
    LEGACY = "legacy"  # emulated DEC 21140 (tulip)


class MacMode(StrEnum):
    DYNAMIC = "dynamic"
    STATIC = "static"


class ComKind(StrEnum):
    NONE = "none"
    PIPE = "pipe"  # a UNIX socket on this host (Hyper-V: a named pipe on this computer)
    REMOTE = "remote"  # TCP to HOST:PORT (Hyper-V: a named pipe on a remote computer)


class StartAction(StrEnum):
    NOTHING = "nothing"
    IF_RUNNING = "if_running"
    ALWAYS = "always"


class StopAction(StrEnum):
    SAVE = "save"
    TURN_OFF = "turn_off"
    SHUT_DOWN = "shut_down"


def allowed_text(choices: type[StrEnum]) -> str:
    """``"a, b, c"`` — the allowed values of an enum, for error messages."""
    return ", ".join(member.value for member in choices)


class FailoverPriority(StrEnum):
    """Hyper-V's failover priority of an HA VM; ``none`` is "No Auto Start"
    (docs/architecture.md, "Failover cluster")."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NONE = "none"
