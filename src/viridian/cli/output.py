"""What the CLI shows: JSON as the API sent it, human tables and views, job progress.

Everything here is pure formatting (API object in, text out) except :func:`emit_json`
and :class:`JobProgress`, which write to the stream they are given.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import click

from viridian.cli.integration_output import runtime_sections
from viridian.errors import HostError

__all__ = [
    "JobProgress",
    "emit_json",
    "emit_json_body",
    "format_host",
    "format_table",
    "format_uptime",
    "format_vm_details",
    "format_vm_table",
    "job_label",
    "vm_state_line",
]

Pairs = list[tuple[str, str]]

AUTO_START_TEXT = {
    "nothing": "nothing",
    "if_running": "if-running (start if it was running when the service stopped)",
    "always": "always (always start this virtual machine automatically)",
}
AUTO_STOP_TEXT = {
    "save": "save (save the virtual machine state)",
    "turn_off": "turn-off (turn off the virtual machine)",
    "shut_down": "shut-down (shut down the guest operating system)",
}
NIC_KIND_TEXT = {"synthetic": "Synthetic (virtio)", "legacy": "Legacy (emulated tulip)"}
LEGACY_PXE_TEXT = (
    "iPXE where the startup order says \"net\" (DHCP, then the boot file the DHCP "
    "server names; if nothing boots, the next device)"
)
IDE_KIND_TEXT = {"hard_disk": "Hard disk", "dvd": "DVD drive"}


def emit_json(obj: Any) -> None:
    """Print an API object unchanged, as indented JSON, on stdout."""
    click.echo(json.dumps(obj, indent=2))


def emit_json_body(body: bytes) -> None:
    """Print a JSON answer exactly as the API sent it when stdout is a pipe or a file
    (re-indenting ten thousand vm objects would take seconds); indented like
    :func:`emit_json` on a terminal, where a person reads it.

    :raises HostError: ``body`` is not a JSON object (not the viridian service).
    """
    text = body.strip()
    if not (text.startswith(b"{") and text.endswith(b"}")):
        raise HostError("the server did not answer a JSON object; is --url / VIRIDIAN_URL "
                        "pointing at the viridian service?")
    if sys.stdout.isatty():
        emit_json(json.loads(text))
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(text + b"\n")
    sys.stdout.buffer.flush()


def format_uptime(seconds: float | None) -> str:
    """``h:mm:ss`` (hours unbounded); ``-`` when unknown."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces; ``None`` cells show as ``-``."""
    cells = [list(headers), *([_cell(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(_table_line(row, widths) for row in cells)


def _table_line(row: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def format_vm_table(vms: Sequence[dict[str, Any]]) -> str:
    """The ``vm list`` table: Name, State, CPU count, Memory (MB), Uptime, Status (and
    Heartbeat after Uptime when the service reports it)."""
    headers: tuple[str, ...] = ("Name", "State", "CPUs", "Memory (MB)", "Uptime", "Status")
    rows = [_vm_row(vm) for vm in vms]
    if any("heartbeat" in vm for vm in vms):
        headers = (*headers[:5], "Heartbeat", headers[5])
        rows = [(*row[:5], vm.get("heartbeat"), row[5]) for row, vm in zip(rows, vms, strict=True)]
    return format_table(headers, rows) if rows else "no virtual machines"


def _vm_row(vm: dict[str, Any]) -> tuple[Any, ...]:
    uptime = format_uptime(vm.get("uptime_s")) if vm.get("uptime_s") else None
    return (
        vm.get("name"),
        vm.get("state"),
        vm.get("processors"),
        vm.get("memory_mb"),
        uptime,
        vm.get("status"),
    )


def _pairs_text(pairs: Pairs, indent: str = "") -> list[str]:
    width = max((len(key) for key, _ in pairs), default=0) + 1
    return [f"{indent}{key + ':':<{width}} {value}".rstrip() for key, value in pairs]


def _sections_text(sections: list[tuple[str, Pairs]]) -> str:
    lines: list[str] = []
    for title, pairs in sections:
        lines += ["", title, *_pairs_text(pairs, "  ")]
    return "\n".join(lines)


def format_vm_details(vm: dict[str, Any]) -> str:
    """``vm show``: identity and state, then every setting grouped like Hyper-V's dialog."""
    settings = vm.get("settings") or {}
    summary = "\n".join(_pairs_text(_vm_summary(vm)))
    return summary + "\n" + _sections_text(_setting_sections(settings) + runtime_sections(vm))


def _vm_summary(vm: dict[str, Any]) -> Pairs:
    settings = vm.get("settings") or {}
    return [
        ("Name", _cell(vm.get("name"))),
        ("ID", _cell(vm.get("id"))),
        ("State", f"{_cell(vm.get('state'))} (enabled_state {_cell(vm.get('enabled_state'))})"),
        ("Status", _cell(vm.get("status"))),
        ("Uptime", format_uptime(vm.get("uptime_s"))),
        ("Memory (MB)", _cell(vm.get("memory_mb"))),
        ("Processors", _cell(vm.get("processors"))),
        ("PID", _cell(vm.get("pid"))),
        ("Folder", _cell(vm.get("folder"))),
        ("Created", _cell(vm.get("created_at"))),
        ("Notes", _cell(settings.get("notes"))),
    ]


def _setting_sections(settings: dict[str, Any]) -> list[tuple[str, Pairs]]:
    return [
        ("BIOS", _bios(settings.get("bios") or {})),
        ("Memory", [("Startup RAM (MB)", _cell((settings.get("memory") or {}).get("startup_mb")))]),
        ("Processor", _processor(settings.get("processor") or {})),
        *_ide_sections(settings.get("ide") or []),
        *_scsi_sections(settings.get("scsi") or []),
        *_nic_sections(settings.get("network_adapters") or []),
        ("COM 1", [("Attachment", _com(settings.get("com1")))]),
        ("COM 2", [("Attachment", _com(settings.get("com2")))]),
        ("Diskette Drive", [("Virtual floppy", _cell((settings.get("floppy") or {}).get("path")))]),
        ("Automatic Start Action", _auto_start(settings.get("automatic_start") or {})),
        ("Automatic Stop Action", _auto_stop(settings.get("automatic_stop") or {})),
    ]


def _on_off(value: Any) -> str:
    return "-" if value is None else ("on" if value else "off")


def _bios(bios: dict[str, Any]) -> Pairs:
    order = bios.get("startup_order")
    return [
        ("Num Lock", _on_off(bios.get("num_lock"))),
        ("Startup order", ",".join(order) if order else "-"),
    ]


def _processor(cpu: dict[str, Any]) -> Pairs:
    return [
        ("Count", _cell(cpu.get("count"))),
        ("Reserve (%)", _cell(cpu.get("reserve_pct"))),
        ("Limit (%)", _cell(cpu.get("limit_pct"))),
        ("Relative weight", _cell(cpu.get("weight"))),
        ("Compatibility mode", _on_off(cpu.get("compatibility_mode"))),
    ]


def _ide_sections(drives: list[dict[str, Any]]) -> list[tuple[str, Pairs]]:
    slots = {(d.get("controller"), d.get("location")): d for d in drives}
    return [
        (
            f"IDE Controller {c}",
            [(f"Location {loc}", _ide_drive(slots.get((c, loc)))) for loc in (0, 1)],
        )
        for c in (0, 1)
    ]


def _ide_drive(drive: dict[str, Any] | None) -> str:
    if drive is None:
        return "none"
    kind = IDE_KIND_TEXT.get(drive.get("kind", ""), _cell(drive.get("kind")))
    media = _disk_path(drive) if drive.get("path") else "empty"
    return f"{kind}, {media}"


def _disk_path(disk: dict[str, Any]) -> str:
    fmt = disk.get("format")
    return f"{disk.get('path')} ({fmt})" if fmt else str(disk.get("path"))


def _scsi_sections(controllers: list[dict[str, Any]]) -> list[tuple[str, Pairs]]:
    if not controllers:
        return [("SCSI Controller", [("Controllers", "none")])]
    return [(f"SCSI Controller {c.get('controller')}", _scsi_disks(c)) for c in controllers]


def _scsi_disks(controller: dict[str, Any]) -> Pairs:
    disks = controller.get("disks") or []
    if not disks:
        return [("Disks", "none")]
    return [(f"Location {d.get('location')}", _disk_path(d)) for d in disks]


def _nic_sections(nics: list[dict[str, Any]]) -> list[tuple[str, Pairs]]:
    if not nics:
        return [("Network Adapter", [("Adapters", "none")])]
    return [(f"Network Adapter {i}", _nic(nic)) for i, nic in enumerate(nics, start=1)]


def _nic(nic: dict[str, Any]) -> Pairs:
    mac_mode = nic.get("mac_mode")
    mac = f"{_cell(mac_mode)} {nic.get('mac') or '(assigned at start)'}"
    pairs = [
        ("Type", NIC_KIND_TEXT.get(nic.get("kind", ""), _cell(nic.get("kind")))),
        ("Switch", nic.get("switch") or "not connected"),
        ("MAC address", mac),
        ("VLAN ID", "none" if nic.get("vlan_id") is None else str(nic["vlan_id"])),
    ]
    if nic.get("kind") == "legacy":
        pairs.append(("Network boot", LEGACY_PXE_TEXT))
    return pairs


def _com(port: dict[str, Any] | None) -> str:
    if not port or port.get("kind") in (None, "none"):
        return "none"
    if port.get("kind") == "remote":
        return f"remote {_cell(port.get('address'))}"
    return f"{port.get('kind')} {_cell(port.get('path'))}"


def _auto_start(start: dict[str, Any]) -> Pairs:
    action = start.get("action", "")
    return [
        ("Action", AUTO_START_TEXT.get(action, _cell(action))),
        ("Delay (s)", _cell(start.get("delay_s"))),
    ]


def _auto_stop(stop: dict[str, Any]) -> Pairs:
    action = stop.get("action", "")
    return [("Action", AUTO_STOP_TEXT.get(action, _cell(action)))]


def format_host(host: dict[str, Any]) -> str:
    """``host show``: the host's identity, capacity and what the VMs use of it."""
    ratio = host.get("virtual_processor_ratio")
    pairs = [
        ("Hostname", _cell(host.get("hostname"))),
        ("viridian version", _cell(host.get("version"))),
        ("Accelerator", _cell(host.get("accelerator"))),
        ("QEMU version", _cell(host.get("qemu_version"))),
        ("Logical processors", _cell(host.get("logical_processors"))),
        ("Memory (MB)", _cell(host.get("memory_mb"))),
        ("Memory available (MB)", _cell(host.get("memory_available_mb"))),
        ("Host reserve (MB)", _cell(host.get("host_reserve_mb"))),
        ("Memory assigned (MB)", _cell(host.get("memory_assigned_mb"))),
        ("VMs", f"{_cell(host.get('vms_total'))} ({_cell(host.get('vms_running'))} running)"),
        (
            "Virtual processors running",
            f"{_cell(host.get('virtual_processors_running'))} (at most {_cell(ratio)} "
            "per logical processor)",
        ),
        ("Data folder", _cell(host.get("data_dir"))),
        ("Boot ID", _cell(host.get("boot_id"))),
        ("Uptime", format_uptime(host.get("uptime_s"))),
    ]
    if isinstance(host.get("transport"), dict):
        pairs.append(("Transport", format_transport(host["transport"])))
    if isinstance(host.get("confinement"), dict):
        pairs.append(("QEMU confined", format_confinement(host["confinement"])))
    return "\n".join(_pairs_text(pairs))


def format_confinement(confinement: dict[str, Any]) -> str:
    """``yes (one user per VM)`` or ``no`` with the reason the host default could not be
    honoured (docs/architecture.md, "Security")."""
    if confinement.get("confine_qemu"):
        return "yes (one user per VM)"
    reason = confinement.get("reason")
    return f"no: {reason}" if reason else "no (host setting confine_qemu is false)"


def format_transport(transport: dict[str, Any]) -> str:
    """``https, self-signed certificate SHA-256 AB:CD:…`` or ``http`` (docs/api.md, "Transport")."""
    fingerprint = transport.get("fingerprint_sha256")
    if not fingerprint:
        return str(transport.get("scheme"))
    kind = "self-signed " if transport.get("self_signed") else ""
    return f"{transport.get('scheme')}, {kind}certificate SHA-256 {fingerprint}"


def vm_state_line(vm: dict[str, Any]) -> str:
    """``vm1: Running``, with the status when the service gives one."""
    status = f" ({vm['status']})" if vm.get("status") else ""
    return f"{vm.get('name')}: {vm.get('state')}{status}"


def job_label(job: dict[str, Any]) -> str:
    """``start vm1``, or ``host shutdown`` for a job without a VM."""
    kind = str(job.get("kind", "job")).replace("_", " ")
    return f"{kind} {job['vm']}" if job.get("vm") else kind


def _unfinished(job: dict[str, Any]) -> bool:
    return job.get("state") in ("queued", "running")


def _doing(job: dict[str, Any]) -> str | None:
    """What an unfinished job says it is doing (a finished job's message repeats its outcome)."""
    message = job.get("message")
    return message if _unfinished(job) and message and message != job.get("state") else None


def progress_line(job: dict[str, Any]) -> str:
    """Plain progress: ``start vm1: running 40% - booting``."""
    doing = _doing(job)
    detail = f" - {doing}" if doing else ""
    return f"{job_label(job)}: {job.get('state')} {job.get('progress', 0)}%{detail}"


def progress_bar(job: dict[str, Any], width: int) -> str:
    """One terminal line of at most ``width - 1`` characters: label, bar, percent, doing/state."""
    percent = max(0, min(100, int(job.get("progress") or 0)))
    filled = percent * 20 // 100
    bar = "#" * filled + "-" * (20 - filled)
    line = f"{job_label(job)} [{bar}] {percent:3d}% {_doing(job) or job.get('state')}"
    return line[: max(width - 1, 0)]


class JobProgress:
    """Shows each version of a job on ``stream``: one updating bar on a TTY, else plain lines.

    Plain mode prints a line only when what it would say changed. Call with every job
    version, the final one last (the bar is then ended with a newline).
    """

    def __init__(
        self, stream: TextIO | None = None, tty: bool | None = None, width: int | None = None
    ) -> None:
        stream = stream or sys.stderr
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._width = width or shutil.get_terminal_size().columns
        self._last = ""

    def __call__(self, job: dict[str, Any]) -> None:
        if self._tty:
            self._draw(progress_bar(job, self._width), not _unfinished(job))
        else:
            self._print(progress_line(job))

    def _draw(self, line: str, finished: bool) -> None:
        self._stream.write("\r\x1b[K" + line + ("\n" if finished else ""))
        self._stream.flush()

    def _print(self, line: str) -> None:
        if line != self._last:
            self._stream.write(line + "\n")
            self._stream.flush()
        self._last = line
