"""The runtime record: what exactly was launched for a running VM, kept in its runtime folder.

A restarted service reads it back to find the VM's QEMU (pid + start time, boot id),
and to know the command line and settings the VM is really running with — which may
differ from the catalog's settings after an edit that only applies at the next start.

Format: one JSON object with a ``version`` member. Records are never rewritten in
place; an older record is upgraded in memory when loaded, by :data:`UPGRADES` — one
small step per version (``UPGRADES[n]`` turns a version-*n* dict into version *n+1*).
To change the format: bump :data:`RECORD_VERSION`, add the step, and add a hand-written
record of the old version to the tests. Never edit or remove an old step: a VM launched
by an older viridian may still be running when a newer one starts.

The file is written atomically (temporary file + rename) and not fsynced: it lives in a
runtime folder whose QEMU dies with the host anyway, and a killed service does not lose
page-cache writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from .capabilities import Accelerator
from .errors import RuntimeRecordError
from .runtime_paths import RuntimePaths

__all__ = [
    "RECORD_VERSION",
    "UPGRADES",
    "DaemonRecord",
    "RuntimeRecord",
    "load_record",
    "upgrade_record_data",
    "write_pid_file",
    "write_record",
]

RECORD_VERSION = 2

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 adds ``storage_daemon``: a VM launched by version 1 has none."""
    return {**data, "storage_daemon": None}


#: ``UPGRADES[n]``: version-n dict → version-(n+1) dict.
UPGRADES: dict[int, Upgrade] = {1: _v1_to_v2}

_ACCELERATORS = ("kvm", "tcg")


@dataclass(frozen=True)
class RuntimeRecord:
    """One launched QEMU, named and versioned (see module docs)."""

    vm_id: str
    vm_name: str
    argv: tuple[str, ...]
    qemu_binary: str
    pid: int
    pid_start_time: int
    """Start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    started_at: float
    """Unix time at launch."""
    accelerator: Accelerator
    boot_id: str
    """The kernel's boot id at launch: a different one means the host rebooted since."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """The VM's settings as launched; opaque to this layer."""
    storage_daemon: DaemonRecord | None = None
    """The VM's storage daemon, started before QEMU (version 2; docs/architecture.md,
    "The storage path"), or None when QEMU opens its images itself."""
    version: int = RECORD_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        data["argv"] = list(self.argv)
        data["settings"] = dict(self.settings)
        if self.storage_daemon is not None:
            data["storage_daemon"]["argv"] = list(self.storage_daemon.argv)
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuntimeRecord:
        """Build from a current-version dict. Raises :class:`RuntimeRecordError`."""
        argv = _field(data, "argv", list)
        if not all(isinstance(a, str) for a in argv):
            raise RuntimeRecordError("runtime record field 'argv' must be a list of strings")
        accelerator = _field(data, "accelerator", str)
        if accelerator not in _ACCELERATORS:
            raise RuntimeRecordError(
                f"runtime record field 'accelerator' is {accelerator!r}; allowed: kvm, tcg"
            )
        return cls(
            vm_id=_field(data, "vm_id", str),
            vm_name=_field(data, "vm_name", str),
            argv=tuple(argv),
            qemu_binary=_field(data, "qemu_binary", str),
            pid=_field(data, "pid", int),
            pid_start_time=_field(data, "pid_start_time", int),
            started_at=float(_field(data, "started_at", (int, float))),
            accelerator=cast(Accelerator, accelerator),
            boot_id=_field(data, "boot_id", str),
            settings=_field(data, "settings", dict),
            storage_daemon=_daemon(data),
            version=_field(data, "version", int),
        )


@dataclass(frozen=True)
class DaemonRecord:
    """A VM's ``qemu-storage-daemon`` process: identified like QEMU by pid + start time."""

    pid: int
    pid_start_time: int
    argv: tuple[str, ...]


def _daemon(data: Mapping[str, Any]) -> DaemonRecord | None:
    raw = data.get("storage_daemon")  # absent in a version-1 dict: no daemon
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RuntimeRecordError(f"runtime record field 'storage_daemon' is not an object: {raw!r}")
    argv = _field(raw, "argv", list)
    return DaemonRecord(_field(raw, "pid", int), _field(raw, "pid_start_time", int),
                        tuple(str(a) for a in argv))


def _field(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in data:
        raise RuntimeRecordError(f"runtime record has no field {name!r}")
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RuntimeRecordError(f"runtime record field {name!r} has the wrong type: {value!r}")
    return value


def upgrade_record_data(
    data: Mapping[str, Any],
    upgrades: Mapping[int, Upgrade] = UPGRADES,
    current: int = RECORD_VERSION,
) -> dict[str, Any]:
    """Bring a record dict of any known version to ``current``, one step at a time.

    :raises RuntimeRecordError: no version, a version newer than ``current`` (written by a
        newer viridian), or a missing step.
    """
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RuntimeRecordError(f"runtime record has no valid version (found {version!r})")
    if version > current:
        raise RuntimeRecordError(
            f"runtime record version {version} is newer than this viridian understands "
            f"(up to {current})"
        )
    result = dict(data)
    while version < current:
        step = upgrades.get(version)
        if step is None:
            raise RuntimeRecordError(f"no upgrade from runtime record version {version}")
        result = step(result)
        version += 1
        result["version"] = version
    return result


def write_record(paths: RuntimePaths, record: RuntimeRecord) -> None:
    """Write ``record`` to ``paths.record_file`` atomically (readers never see half a file)."""
    _write_atomically(paths.record_file, record.to_json() + "\n")


def write_pid_file(paths: RuntimePaths, pid: int) -> None:
    """The conventional pid file, for tools outside viridian."""
    _write_atomically(paths.pid_file, f"{pid}\n")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_record(paths: RuntimePaths) -> RuntimeRecord:
    """Read the record, upgrading an older version. Raises :class:`RuntimeRecordError`."""
    try:
        text = paths.record_file.read_text()
    except FileNotFoundError as err:
        raise RuntimeRecordError(f"no runtime record at {paths.record_file}") from err
    except OSError as err:
        raise RuntimeRecordError(f"cannot read runtime record {paths.record_file}: {err}") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise RuntimeRecordError(f"runtime record {paths.record_file} is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise RuntimeRecordError(f"runtime record {paths.record_file} is not a JSON object")
    return RuntimeRecord.from_dict(upgrade_record_data(data))
