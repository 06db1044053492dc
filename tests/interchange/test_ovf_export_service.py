"""OVF and OVA export through the real service, and their round trip (issue 16 part 3):
a VM with a VHD at IDE 0:0, a qcow2 at SCSI 0:1, an ISO in the DVD drive and two
adapters is exported ``--ovf`` (descriptor checked against DSP0243's structure, the
SHA-256 manifest verified, disks streamOptimized VMDKs) and ``--ova`` (a tar whose first
member is the descriptor, then the manifest), removed and imported from each: same
memory, processors, drive slots, adapters (the MAC kept when no VM uses it, else a new
one, noted), DVD image, and ``qemu-img compare`` equal disks. A SIGKILL of the service
at ``export.written`` leaves no OVA and no staging folder; at ``import.copied`` of an
OVA import it registers nothing and the staging folder is gone after the restart."""

from __future__ import annotations

import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.service.harness import Service, running_service, wait_job
from viridian.cli.main import cli
from viridian.interchange.manifest import verify_manifest
from viridian.interchange.ovf_check import check_ovf

VM = "roundtrip"
MAC = "00:15:5D:AA:BB:01"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, samples: Path) \
        -> Iterator[tuple[Service, Path, dict[str, Any]]]:
    """A service with VM ``roundtrip`` (Off) and copies of its disks' data."""
    work = tmp_path_factory.mktemp("ovf-export")
    ide, scsi = work / "boot.vhd", work / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic",
                    str(ide), "64M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(scsi), "32M"], check=True)
    for image, fmt, pattern in ((ide, "vpc", 0x5A), (scsi, "qcow2", 0x3C)):
        subprocess.run(["qemu-io", "-f", fmt, "-c", f"write -P {pattern} 1M 3M", "-c",
                        f"write -P {pattern + 1} 20M 512k", str(image)], check=True,
                       capture_output=True)
    settings = {
        "processor": {"count": 2}, "memory": {"startup_mb": 384}, "notes": "round trip",
        "ide": [{"controller": 0, "location": 0, "kind": "hard_disk", "path": str(ide)},
                {"controller": 1, "location": 0, "kind": "dvd",
                 "path": str(samples / "input.iso")}],
        "scsi": [{"controller": 0, "disks": [{"location": 1, "path": str(scsi)}]}],
        "network_adapters": [{"kind": "synthetic", "mac_mode": "static", "mac": MAC},
                             {"kind": "legacy"}]}
    with running_service() as service, service.client() as api:
        created = api.post("/vms", json={"name": VM, "settings": settings})
        assert created.status_code == 201, created.text
        exports = work / "exports"
        exports.mkdir()
        yield service, exports, created.json()


def _done(api: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json(), 300)
    assert job["state"] == "completed", job
    return dict(job["result"])


def _drives(vm: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    ide = [("ide", d["controller"], d["location"], d["kind"]) for d in vm["settings"]["ide"]]
    return ide + [("scsi", c["controller"], d["location"], "hard_disk")
                  for c in vm["settings"]["scsi"] for d in c["disks"]]


def _paths(vm: dict[str, Any]) -> dict[tuple[str, int, int], str]:
    found = {("ide", d["controller"], d["location"]): d["path"] for d in vm["settings"]["ide"]}
    found.update({("scsi", c["controller"], d["location"]): d["path"]
                  for c in vm["settings"]["scsi"] for d in c["disks"]})
    return found


def _same_vm(original: dict[str, Any], imported: dict[str, Any]) -> None:
    assert (imported["memory_mb"], imported["processors"], imported["state"]) == (
        original["memory_mb"], original["processors"], "Off")
    assert _drives(imported) == _drives(original)
    assert len(imported["settings"]["network_adapters"]) == 2
    before, after = _paths(original), _paths(imported)
    for slot in (("ide", 0, 0), ("scsi", 0, 1)):
        same = subprocess.run(["qemu-img", "compare", "-U", before[slot], after[slot]],
                              capture_output=True, text=True)
        assert same.returncode == 0, (slot, same.stdout)
        assert after[slot].startswith(imported["folder"])
    assert Path(after[("ide", 1, 0)]).read_bytes() == \
        Path(before[("ide", 1, 0)]).read_bytes()


def _restart(service: Service, points: str | None) -> None:
    service.stop()
    if points:
        service.env["VIRIDIAN_FAULT_POINTS"] = points
    else:
        service.env.pop("VIRIDIAN_FAULT_POINTS", None)
    service.start(timeout=120)


def _killed_by(service: Service, request: Callable[[httpx.Client], httpx.Response]) -> None:
    with service.client() as api:
        assert request(api).status_code == 202
    assert service.process is not None
    service.process.wait(timeout=180)


def test_ovf_round_trip(made: tuple[Service, Path, dict[str, Any]]) -> None:
    service, exports, original = made
    with service.client() as api:
        result = _done(api, api.post(f"/vms/{VM}/export",
                                     json={"folder": str(exports), "format": "ovf"}))
        package = exports / VM
        assert result["folder"] == str(package) and result["format"] == "ovf"
        assert result["files"] == [f"{VM}.ovf", f"{VM}.mf", f"{VM}-disk1.vmdk",
                                   f"{VM}-disk2.vmdk", f"{VM}-dvd1.iso"]
        assert sorted(p.name for p in exports.iterdir()) == [VM]
        assert check_ovf((package / f"{VM}.ovf").read_bytes()) == []
        assert "SHA256(" in (package / f"{VM}.mf").read_text()
        assert verify_manifest(package / f"{VM}.mf") == [
            f"{VM}.ovf", f"{VM}-disk1.vmdk", f"{VM}-disk2.vmdk", f"{VM}-dvd1.iso"]
        info = subprocess.run(["qemu-img", "info", str(package / f"{VM}-disk1.vmdk")],
                              capture_output=True, text=True, check=True).stdout
        assert "create type: streamOptimized" in info
        assert MAC in (package / f"{VM}.ovf").read_text()
        unexpressed = " | ".join(result["unexpressed"])
        assert "legacy (DEC 21140) written as E1000" in unexpressed
        assert "static MAC mode" in unexpressed
        assert api.delete(f"/vms/{VM}").status_code == 200
        vm = _done(api, api.post("/imports", json={"path": str(package / f"{VM}.ovf")}))
        _same_vm(original, vm)
        assert vm["name"] == VM and vm["id"] != original["id"]
        first = vm["settings"]["network_adapters"][0]
        assert (first["mac_mode"], first["mac"]) == ("static", MAC)  # free again: kept


def test_ova_round_trip(made: tuple[Service, Path, dict[str, Any]]) -> None:
    service, exports, original = made
    ova = exports / f"{VM}.ova"
    with service.client() as api:
        result = _done(api, api.post(f"/vms/{VM}/export",
                                     json={"folder": str(exports), "format": "ova"}))
        assert result["file"] == str(ova)
        with tarfile.open(ova) as archive:
            members = archive.getmembers()
        assert [m.name for m in members] == result["files"]
        assert [m.name for m in members][:2] == [f"{VM}.ovf", f"{VM}.mf"]
        assert all(m.isreg() for m in members)
        with ova.open("rb") as file:
            assert file.read(512)[257:265] == b"ustar\x0000"  # a POSIX USTAR header
        vm = _done(api, api.post("/imports", json={"path": str(ova), "name": "from-ova"}))
    assert vm["mode"] == "ova"
    _same_vm(original, vm)
    assert f"adapter 1: MAC {MAC} of the package is used by VM '{VM}' (network adapter " \
        "1): a new address is assigned" in vm["unmapped"]
    assert vm["settings"]["network_adapters"][0]["mac"] != MAC


def _cli(service: Service, *args: str, code: int = 0) -> str:
    env = {"VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, (args, result.exit_code, result.output)
    return result.output  # stdout and stderr


def test_cli_export_ova_and_import(made: tuple[Service, Path, dict[str, Any]]) -> None:
    service, exports, _ = made
    target = exports.parent / "cli"
    target.mkdir()
    assert "give --ovf or --ova, not both" in _cli(service, "vm", "export", VM, str(target),
                                                  "--ovf", "--ova", code=2)
    output = _cli(service, "vm", "export", VM, str(target), "--ova")
    assert f"exported {VM} (Off) as OVA to {target / VM}.ova" in output
    assert "not in the OVF package: SCSI controller 0 (synthetic)" in output
    output = _cli(service, "vm", "import", f"{target / VM}.ova", "--name", "from-cli")
    assert "imported from-cli (ova): Off" in output


def test_kills_leave_nothing(made: tuple[Service, Path, dict[str, Any]]) -> None:
    service, exports, _ = made
    ova = exports / f"{VM}.ova"
    assert ova.is_file()  # written by test_ova_round_trip
    elsewhere = exports.parent / "elsewhere"
    elsewhere.mkdir()
    vms = service.data_dir / "vms"
    before = sorted(p.name for p in vms.iterdir())
    _restart(service, "export.written,import.copied")
    _killed_by(service, lambda api: api.post(
        f"/vms/{VM}/export", json={"folder": str(elsewhere), "format": "ova"}))
    [staged] = [p.name for p in elsewhere.iterdir()]  # the killed export's staging folder
    assert staged.startswith(f".{VM}.ova.export-")
    service.start(timeout=120)  # still armed: the import dies before its commit
    _killed_by(service, lambda api: api.post("/imports", json={"path": str(ova),
                                                               "name": "killed"}))
    assert len(sorted(p.name for p in vms.iterdir())) == len(before) + 1  # its staging
    _restart(service, None)
    assert list(elsewhere.iterdir()) == []  # no OVA, the staging folder swept
    assert sorted(p.name for p in vms.iterdir()) == before
    with service.client() as api:
        assert api.get("/vms/killed").status_code == 404
        assert api.get(f"/vms/{VM}").json()["state"] == "Off"
