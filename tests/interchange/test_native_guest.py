"""Export → remove → import of a real guest (issue 16 part 2), with SIGKILL of the service
at the fault points of export and import: a Saved VM with a running-state checkpoint is
exported; a killed export leaves no package and no staging folder; a killed import before
its commit registers nothing, after it the VM is there whole; the imported VM resumes
from its saved state with its markers, and its checkpoint still applies."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Console, Service, act, running_service, wait_job

pytestmark = [pytest.mark.guest]

VM = "traveller"
FIRST_SECTOR = 100


def _sh(api: httpx.Client, script: str) -> bytes:
    deadline = time.monotonic() + 90
    while True:  # after a restore the agent channel needs a moment
        reply = api.post(f"/vms/{VM}/integration/exec",
                         json={"argv": ["/bin/sh", "-c", script], "timeout_s": 60})
        if reply.status_code == 200:
            break
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.5)
    body = reply.json()
    assert body["exit_code"] == 0, base64.b64decode(body["stderr_b64"])
    return base64.b64decode(body["stdout_b64"])


def _write_marker(api: httpx.Client, index: int) -> None:
    _sh(api, f"printf 'M{index:03d}' | dd of=/dev/sda bs=512 seek={FIRST_SECTOR + index} "
             "conv=notrunc,sync 2>/dev/null && sync")


def _markers(api: httpx.Client, count: int) -> list[str]:
    script = "echo 3 > /proc/sys/vm/drop_caches; " + "; ".join(
        f"dd if=/dev/sda bs=512 skip={FIRST_SECTOR + i} count=1 2>/dev/null | head -c 4; echo"
        for i in range(count))
    return [line.strip("\0") for line in _sh(api, script).decode().split("\n")[:count]]


def _crash(service: Service, point: str, request: Any) -> None:
    """Restart the service armed with ``point``, send ``request``, wait for the kill,
    start it again unarmed."""
    service.stop()
    service.env["VIRIDIAN_FAULT_POINTS"] = point
    service.start()
    with service.client() as api:
        assert request(api).status_code == 202
    assert service.process is not None
    service.process.wait(timeout=180)
    service.env.pop("VIRIDIAN_FAULT_POINTS", None)
    service.start(timeout=120)


def _done(api: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json(), 300)
    assert job["state"] == "completed", job
    return dict(job["result"])


@pytest.fixture(scope="module")
def saved(guest_iso: Path, tmp_path_factory: pytest.TempPathFactory) \
        -> Iterator[tuple[Service, Path]]:
    """A Saved guest with markers 0 (in checkpoint cp0) and 1, and an export folder."""
    work = tmp_path_factory.mktemp("native-guest")
    disk = work / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    with running_service() as service, service.client() as api:
        created = api.post("/vms", json={"name": VM, "memory_mb": 256, "dvd": str(guest_iso),
                                         "vhd": str(disk)})
        assert created.status_code == 201, created.text
        act(api, VM, "start")
        Console(service.data_dir, created.json()["id"]).wait_for(b"VIRIDIAN-GUEST READY")
        _write_marker(api, 0)
        _done(api, api.post(f"/vms/{VM}/checkpoints", json={"name": "cp0"}))
        _write_marker(api, 1)
        act(api, VM, "save")
        yield service, work


def test_export_remove_import_with_kills(saved: tuple[Service, Path]) -> None:
    service, work = saved
    exports = work / "exports"
    exports.mkdir()
    _crash(service, "export.written",
           lambda api: api.post(f"/vms/{VM}/export", json={"folder": str(exports)}))
    assert list(exports.iterdir()) == []  # neither the package nor its staging folder
    with service.client() as api:
        result = _done(api, api.post(f"/vms/{VM}/export", json={"folder": str(exports)}))
        assert result["state"] == "Saved" and result["checkpoints"] == 1
        vm_id = api.get(f"/vms/{VM}").json()["id"]
        assert api.delete(f"/vms/{VM}", params={"delete_files": "true"}).status_code == 200
    package = exports / VM
    vms = service.data_dir / "vms"

    _crash(service, "import.copied",
           lambda api: api.post("/imports", json={"path": str(package), "mode": "copy"}))
    with service.client() as api:
        assert api.get(f"/vms/{VM}").status_code == 404
        assert api.get("/vms").json()["vms"] == []
    assert [p.name for p in vms.iterdir()] == []  # the staging copy is gone

    _crash(service, "import.committed",
           lambda api: api.post("/imports", json={"path": str(package), "mode": "copy"}))
    with service.client() as api:
        vm = api.get(f"/vms/{VM}").json()
        assert (vm["id"], vm["state"]) == (vm_id, "Saved")
        assert [p.name for p in vms.iterdir()] == [vm_id]  # the sweep finished the rename
        assert [cp["name"] for cp in api.get(f"/vms/{VM}/checkpoints").json()[
            "checkpoints"]] == ["cp0"]

        act(api, VM, "start")  # resumes from the imported saved state
        assert _markers(api, 2) == ["M000", "M001"]
        _done(api, api.post(f"/vms/{VM}/checkpoints/cp0/apply", json={}))
        assert _markers(api, 2) == ["M000", ""]
        act(api, VM, "stop")
