"""OVF packages imported through the real service (issue 16 part 3): the cot samples
(VMware OVF 1.x with a streamOptimized VMDK on SCSI, VirtualBox OVF 2.0 with a SATA disk)
become VMs whose disk, converted to a dynamic VHD at IDE 0:0, holds the same data; what
could not be mapped is listed; a damaged package (manifest digest) is refused and leaves
nothing."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Service, running_service, wait_job


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
