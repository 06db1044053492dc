"""OVF packages imported through the real service (issue 16 part 3): the cot samples
(VMware OVF 1.x with a streamOptimized VMDK on SCSI, VirtualBox OVF 2.0 with a SATA disk)
become VMs whose disk, converted to a dynamic VHD at IDE 0:0, holds the same data; what
could not be mapped is listed; a damaged package (manifest digest) is refused and leaves
nothing. OVA import and the other cot samples: the cot ``input`` package imports as an
OVF and packed as an OVA (manifest checked, disk converted with the same data, ISO in
the DVD drive); ``v0.9.ovf`` and ``minimal.ovf`` import with their settings mapped and
the rest listed; ``invalid.ovf`` is refused naming its broken references; an OVA with a
``../x`` member or a tampered disk is refused and leaves nothing on disk (no VM, no
staging folder, nothing beside the OVA)."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Service, running_service, wait_job

INPUT = ["input.ovf", "input.mf", "input.vmdk", "input.iso", "sample_cfg.txt"]


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with running_service() as svc:
        yield svc


@pytest.fixture(scope="module")
def api(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


def _import(api: httpx.Client, path: Path, **body: Any) -> dict[str, Any]:
    response = api.post("/imports", json={"path": str(path), **body})
    assert response.status_code == 202, response.text
    return wait_job(api, response.json())


@pytest.mark.parametrize(("sample", "disk", "memory", "cpus"), [
    ("vmware.ovf", "input.vmdk", 1536, 2),
    ("ubuntu.2.0.ovf", "ubuntu.2.0-disk1.vmdk", 512, 1)])
def test_cot_samples_import(api: httpx.Client, samples: Path, sample: str, disk: str,
                            memory: int, cpus: int) -> None:
    job = _import(api, samples / sample)
    assert job["state"] == "completed", job
    vm = job["result"]
    assert (vm["memory_mb"], vm["processors"], vm["state"]) == (memory, cpus, "Off")
    ide0 = next(d for d in vm["settings"]["ide"] if (d["controller"], d["location"]) == (0, 0))
    assert ide0["kind"] == "hard_disk" and ide0["format"] == "vpc"
    assert ide0["path"].startswith(vm["folder"])
    same = subprocess.run(["qemu-img", "compare", "-U", str(samples / disk), ide0["path"]],
                          capture_output=True)
    assert same.returncode == 0, same.stdout
    assert any("attached at IDE 0:0" in u for u in vm["unmapped"])
    assert any("synthetic adapter" in u for u in vm["unmapped"])
    assert len(vm["settings"]["network_adapters"]) >= 1


def test_damaged_package_is_refused(api: httpx.Client, service: Service, samples: Path,
                                    tmp_path: Path) -> None:
    for name in ("input.mf", "input.ovf", "input.vmdk", "input.iso", "sample_cfg.txt"):
        shutil.copy(samples / name, tmp_path / name)
    with (tmp_path / "input.vmdk").open("r+b") as disk:
        disk.seek(2000)
        disk.write(b"X")
    before = sorted(p.name for p in (service.data_dir / "vms").iterdir())
    job = _import(api, tmp_path / "input.ovf", name="damaged")
    assert job["state"] == "failed" and "the package is damaged" in job["error"]["message"]
    assert sorted(p.name for p in (service.data_dir / "vms").iterdir()) == before
    assert api.get("/vms/damaged").status_code == 404


def _pack(ova: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return ova


def _data_dir_entries(service: Service) -> list[str]:
    return sorted(p.name for p in (service.data_dir / "vms").iterdir())


def _check_input_vm(vm: dict[str, Any], samples: Path) -> None:
    ide0 = next(d for d in vm["settings"]["ide"] if (d["controller"], d["location"]) == (0, 0))
    assert ide0["path"].startswith(vm["folder"]) and ide0["format"] == "vpc"
    same = subprocess.run(["qemu-img", "compare", "-U", str(samples / "input.vmdk"),
                           ide0["path"]], capture_output=True)
    assert same.returncode == 0, same.stdout
    dvd = next(d for d in vm["settings"]["ide"] if d["kind"] == "dvd")
    assert Path(dvd["path"]).read_bytes() == (samples / "input.iso").read_bytes()
    assert vm["checked_files"] == ["input.ovf", "input.vmdk", "input.iso", "sample_cfg.txt"]
    assert list(Path(vm["folder"]).glob("**/*.ovf")) == []  # the unpacked package is gone


def test_cot_input_as_ovf_and_as_ova(api: httpx.Client, service: Service,
                                     samples: Path, tmp_path: Path) -> None:
    job = _import(api, samples / "input.ovf", name="input-ovf")
    assert job["state"] == "completed", job
    assert job["result"]["mode"] == "ovf"
    _check_input_vm(job["result"], samples)
    ova = _pack(tmp_path / "input.ova", [(n, (samples / n).read_bytes()) for n in INPUT])
    job = _import(api, ova, name="input-ova")
    assert job["state"] == "completed", job
    vm = job["result"]
    assert (vm["mode"], vm["state"]) == ("ova", "Off")
    _check_input_vm(vm, samples)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.ova"]
    assert not [n for n in _data_dir_entries(service) if n.startswith(".")]


def test_v0_9_and_minimal_samples(api: httpx.Client, samples: Path, tmp_path: Path) -> None:
    for name in ("v0.9.ovf", "input.vmdk"):
        shutil.copy(samples / name, tmp_path / name)
    job = _import(api, tmp_path / "v0.9.ovf", name="old-ovf")
    assert job["state"] == "completed", job
    vm = job["result"]
    assert (vm["memory_mb"], vm["processors"]) == (8192, 1)
    assert [d["kind"] for d in vm["settings"]["ide"]].count("hard_disk") == 1
    assert len(vm["settings"]["network_adapters"]) == 1
    assert any("ResourceType 23" in u for u in vm["unmapped"])  # the USB controller
    job = _import(api, samples / "minimal.ovf", name="minimal-ovf")
    assert job["state"] == "completed", job
    vm = job["result"]
    assert vm["settings"]["network_adapters"] == [] and vm["settings"]["scsi"] == []
    assert vm["settings"]["ide"] == []  # the package has no drives


def test_invalid_ovf_is_refused(api: httpx.Client, service: Service, samples: Path) -> None:
    before = _data_dir_entries(service)
    job = _import(api, samples / "invalid.ovf")
    assert job["state"] == "failed"
    message = job["error"]["message"]
    assert "is not a valid OVF package" in message
    assert "disk reference 'nonexistent.vmdk' names no Disk" in message
    assert "its controller (27) is not in the package" in message
    assert _data_dir_entries(service) == before
    assert api.get("/vms/x").status_code == 404


@pytest.mark.parametrize(("extra", "message"), [
    (("../x", b"escape"), "'../x' points outside the package"),
    (None, "input.vmdk: SHA1 is")])
def test_bad_ova_leaves_nothing(api: httpx.Client, service: Service, samples: Path,
                                tmp_path: Path, extra: tuple[str, bytes] | None,
                                message: str) -> None:
    members = [(n, (samples / n).read_bytes()) for n in INPUT]
    if extra:
        members.append(extra)
    else:  # a tampered disk: the manifest's digest no longer matches
        members = [(n, d[:3000] + b"X" + d[3001:] if n == "input.vmdk" else d)
                   for n, d in members]
    folder = tmp_path / "pkg"
    folder.mkdir()
    ova = _pack(folder / "bad.ova", members)
    before = _data_dir_entries(service)
    job = _import(api, ova, name="bad-ova")
    assert job["state"] == "failed" and message in job["error"]["message"], job
    assert _data_dir_entries(service) == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["bad.ova", "pkg"]
    assert api.get("/vms/bad-ova").status_code == 404
