"""Golden QEMU command lines (Proxmox style) and proof that QEMU accepts them.

Each ``golden/<case>.json`` (vm_id, host capabilities, incoming flag, settings dict) is
paired with ``golden/<case>.argv``: the exact argv, one option and its value per line.
Regenerate after an intended change with::

    VIRIDIAN_REGEN_GOLDEN=1 .venv/bin/pytest tests/qemu/test_render.py

and review the diff. ``test_golden_argv_is_accepted_by_qemu`` starts real QEMU (TCG,
``-S``) on golden argvs with their paths moved to real images in a temporary folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from qemu.qmp import QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol

from viridian.errors import InvalidSetting
from viridian.model import VMSettings, settings_from_dict
from viridian.qemu.capabilities import HostCapabilities
from viridian.qemu.netboot import NETBOOT_ROM_NAME, netboot_rom
from viridian.qemu.render import render_argv
from viridian.qemu.runtime_paths import RuntimePaths

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.json"))
REGEN = os.environ.get("VIRIDIAN_REGEN_GOLDEN") == "1"
RUN_ROOT = Path("/var/lib/viridian/run")
DISK_ROOT = "/srv/vms/"
VM_ID = "5f1d0000-0000-4000-8000-0000000000ff"


def load_case(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text())
    return data


def host_of(case: dict[str, Any]) -> HostCapabilities:
    host = dict(case["host"])
    if "qemu_version" in host:
        host["qemu_version"] = tuple(host["qemu_version"])
    return HostCapabilities(**host)


def render_case(case: dict[str, Any]) -> list[str]:
    return render_argv(
        case["vm_id"],
        settings_from_dict(case["settings"]),
        host_of(case),
        RuntimePaths(RUN_ROOT / case["vm_id"]),
        incoming=case["incoming"],
    )


def to_lines(argv: list[str]) -> list[str]:
    """argv[0] alone, then each option with its value (if it has one) on one line."""
    lines = [argv[0]]
    for arg in argv[1:]:
        if arg.startswith("-") or lines[-1] == argv[0]:
            lines.append(arg)
        else:
            lines[-1] += f" {arg}"
    return lines


def from_lines(lines: list[str]) -> list[str]:
    argv = [lines[0]]
    for line in lines[1:]:
        argv.extend(line.split(" ", 1))
    return argv


# --- golden files --------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_golden_argv(name: str) -> None:
    text = "\n".join(to_lines(render_case(load_case(name)))) + "\n"
    golden = GOLDEN / f"{name}.argv"
    if REGEN:
        golden.write_text(text)
    assert golden.exists(), f"{golden.name} missing: run with VIRIDIAN_REGEN_GOLDEN=1"
    assert text == golden.read_text()


def test_golden_matrix_is_complete() -> None:
    assert len(CASES) >= 10
    orphans = {p.stem for p in GOLDEN.glob("*.argv")} - set(CASES)
    assert not orphans, f"golden argv files without a case: {sorted(orphans)}"


def test_lines_round_trip() -> None:
    argv = render_case(load_case("full_gen1"))
    assert from_lines(to_lines(argv)) == argv


# --- what the renderer refuses -------------------------------------------------------


def render(settings: dict[str, Any], vm_id: str = VM_ID) -> list[str]:
    return render_argv(
        vm_id, settings_from_dict(settings), HostCapabilities(), RuntimePaths(Path("/r"))
    )


def test_unresolved_ide_format_is_refused() -> None:
    drive = {"controller": 0, "location": 1, "kind": "hard_disk", "path": "/v/a.vhd"}
    with pytest.raises(InvalidSetting) as caught:
        render({"name": "a", "ide": [drive]})
    assert str(caught.value) == (
        "invalid value None for ide[0].format (disk format not resolved); "
        "allowed: vpc, vhdx, qcow2 or raw (the service resolves the format before a start)"
    )


def test_unresolved_scsi_format_is_refused() -> None:
    scsi = [{"controller": 2, "disks": [{"location": 9, "path": "/v/s.vhd"}]}]
    with pytest.raises(InvalidSetting) as caught:
        render({"name": "a", "scsi": scsi})
    assert caught.value.details["setting"] == "scsi[0].disks[0].format"


def test_unassigned_dynamic_mac_is_refused() -> None:
    with pytest.raises(InvalidSetting) as caught:
        render({"name": "a", "network_adapters": [{"kind": "legacy", "mac_mode": "dynamic"}]})
    assert str(caught.value) == (
        "invalid value None for network_adapters[0].mac; "
        "allowed: a MAC address (the service assigns a dynamic MAC before a start)"
    )


def test_virtual_switch_adapter_uses_the_service_tap() -> None:
    adapters = [
        {"switch": "user", "mac": "00:15:5D:00:00:02"},
        {"switch": "External", "mac": "00:15:5D:00:00:01", "vlan_id": 7},
    ]
    argv = render({"name": "a", "network_adapters": adapters})
    assert "tap,id=net1,ifname=vt5f1d000000n1,script=no,downscript=no" in argv
    assert "virtio-net-pci,netdev=net1,mac=00:15:5D:00:00:01,id=nic1" in argv


def test_vm_id_must_be_a_uuid() -> None:
    with pytest.raises(InvalidSetting) as caught:
        render({"name": "a"}, vm_id="not-a-uuid")
    assert str(caught.value) == "invalid value 'not-a-uuid' for vm_id; allowed: a UUID"


def test_render_is_pure() -> None:
    case = load_case("full_gen1")
    assert render_case(case) == render_case(case)


def test_renderer_does_no_io() -> None:
    import ast

    import viridian.qemu.render as package

    io_modules = {"os", "subprocess", "socket", "pathlib", "shutil", "time", "io", "asyncio"}
    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [n for n in names if n.split(".")[0] in io_modules], (path.name, names)


def test_renders_the_same_for_any_list_order() -> None:
    case = load_case("ide_all_slots")
    reordered = dict(case, settings=dict(case["settings"], ide=case["settings"]["ide"][::-1]))
    assert render_case(reordered) == render_case(case)


# --- QEMU really accepts the golden command lines ------------------------------------

LAUNCHED = ["full_gen1", "ide_all_slots", "incoming"]


def _images(settings: VMSettings) -> list[tuple[str, str]]:
    """(path, format) of every image the VM opens."""
    images = [(d.path, str(d.format)) for d in settings.ide if d.path is not None]
    images += [(d.path, str(d.format)) for c in settings.scsi for d in c.disks]
    if settings.floppy.path is not None:
        images.append((settings.floppy.path, "raw"))
    return images


def _move_to(tmp: Path, case: dict[str, Any], lines: list[str]) -> tuple[list[str], list[str]]:
    """Golden lines with runtime and disk paths under ``tmp``; creates the images."""
    runtime = str(RUN_ROOT / case["vm_id"])
    rom = str(RUN_ROOT / NETBOOT_ROM_NAME)  # shared by the VMs; the service writes it
    (tmp / NETBOOT_ROM_NAME).write_bytes(netboot_rom())
    moved = [
        line.replace(runtime, str(tmp / "run")).replace(rom, str(tmp / NETBOOT_ROM_NAME))
        .replace(DISK_ROOT, f"{tmp}/vms/") for line in lines
    ]
    created = []
    for path, image_format in _images(settings_from_dict(case["settings"])):
        assert path.startswith(DISK_ROOT), f"golden image outside {DISK_ROOT}: {path}"
        target = tmp / "vms" / path.removeprefix(DISK_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        size = "1440K" if target.suffix == ".vfd" else "16M"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", image_format, str(target), size], check=True
        )
        created.append(str(target))
    (tmp / "run").mkdir()
    return moved, created


def _connect(proc: subprocess.Popen[bytes], socket: Path, stderr: Path) -> QEMUMonitorProtocol:
    """Connect to QMP once QEMU listens; fail with QEMU's stderr if it exits first."""
    deadline = time.monotonic() + 60  # a safety net for a hung QEMU, not a timing assertion
    while True:
        if proc.poll() is not None:
            pytest.fail(f"QEMU refused the command line:\n{stderr.read_text()}")
        qmp = QEMUMonitorProtocol(str(socket))
        try:
            qmp.connect()
            return qmp
        except (OSError, EOFError, QMPError):
            qmp.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _quit(qmp: QEMUMonitorProtocol) -> None:
    """Ask QEMU to quit; it may close the socket before its reply is read."""
    with contextlib.suppress(EOFError):
        qmp.cmd("quit")
    with contextlib.suppress(EOFError):
        qmp.close()


@pytest.mark.parametrize("name", LAUNCHED)
def test_golden_argv_is_accepted_by_qemu(name: str, tmp_path: Path) -> None:
    case = load_case(name)
    lines = (GOLDEN / f"{name}.argv").read_text().splitlines()
    moved, images = _move_to(tmp_path, case, lines)
    stderr = tmp_path / "qemu.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen([*from_lines(moved), "-S"], stdin=subprocess.DEVNULL, stderr=err)
    try:
        qmp = _connect(proc, tmp_path / "run" / "qmp.sock", stderr)
        status = qmp.cmd("query-status")
        blocks = qmp.cmd("query-block")
        _quit(qmp)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert isinstance(status, dict) and isinstance(blocks, list)
    assert status["status"] == ("inmigrate" if case["incoming"] else "prelaunch")
    opened = {b["inserted"]["file"] for b in blocks if "inserted" in b}
    assert opened == set(images)
    assert "error" not in stderr.read_text().lower()
