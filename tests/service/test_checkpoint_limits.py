"""Checkpoint limits and refusals on a VM that stays Off (no guest needed): Hyper-V's 50
per VM, names, a subtree deletion that merges everything back into the admin's disk,
settings changes that would orphan checkpoint data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.service.harness import Service, wait_job

pytestmark = pytest.mark.xdist_group("checkpoint_limits")


def cli(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    return subprocess.run([sys.executable, "-m", "viridian.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_fifty_checkpoints_then_refusal_then_subtree_delete(
        service: Service, api: httpx.Client, tmp_path: Path) -> None:
    disk = tmp_path / "off.raw"
    disk.write_bytes(b"BASE" + b"\0" * (4 * 2**20 - 4))
    assert api.post("/vms", json={"name": "off", "vhd": str(disk)}).status_code == 201
    for i in range(50):
        job = wait_job(api, api.post("/vms/off/checkpoints", json={"name": f"n{i}"}).json())
        assert job["state"] == "completed", job
        assert job["result"]["state"] == "Off" and not job["result"]["has_memory"]
    view = api.get("/vms/off/checkpoints").json()
    assert view["count"] == 50
    assert view["now_parent_id"] == view["checkpoints"][-1]["id"]
    refused = cli(service, "checkpoint", "new", "off", "n50")
    assert refused.returncode == 4, refused.stderr
    assert "already has 50 checkpoints, the most a VM can have" in refused.stderr
    assert api.get("/vms/off/checkpoints").json()["count"] == 50  # nothing changed

    bad = api.post("/vms/off/checkpoints", json={"name": "  "})
    assert bad.status_code == 400 and "1..100 characters" in bad.json()["error"]["message"]
    # The disk holds checkpoint data: it may not be swapped out underneath.
    swapped = api.delete("/vms/off/disks/ide/0:0")
    assert swapped.status_code == 409 and "delete the VM's checkpoints first" in swapped.text
    removal = api.delete("/vms/off")
    assert removal.status_code == 409 and "--delete-files" in removal.text

    done = cli(service, "checkpoint", "remove", "off", "n0", "--subtree")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("'n") == 50
    view = api.get("/vms/off/checkpoints").json()
    assert view["count"] == 0 and view["now_disks"] == {}
    assert list(Path(view["folder"]).iterdir()) == []
    assert disk.read_bytes()[:4] == b"BASE"
    vm = api.get("/vms/off").json()
    assert vm["settings"]["ide"][0]["path"] == str(disk)
    assert api.delete("/vms/off").status_code == 200


def test_checkpoints_and_high_availability_exclude_each_other(
        service: Service, api: httpx.Client, tmp_path: Path) -> None:
    """Checkpoints live in one host's catalog, so a failover would restart an HA VM on
    another host without them (docs/architecture.md, "Failover cluster"): HA on is
    refused while the VM has checkpoints, a checkpoint of an HA VM is refused; each
    refusal changes nothing."""
    disk = tmp_path / "ha.raw"
    disk.write_bytes(b"\0" * 2**20)
    assert api.post("/vms", json={"name": "ha", "vhd": str(disk)}).status_code == 201
    job = wait_job(api, api.post("/vms/ha/checkpoints", json={"name": "one"}).json())
    assert job["state"] == "completed", job
    refused = cli(service, "vm", "set", "ha", "--ha", "on")
    assert refused.returncode == 4, refused.stderr
    assert "cannot be made highly available while it has checkpoints" in refused.stderr
    assert api.get("/vms/ha").json()["settings"]["high_availability"]["ha"] is False
    assert cli(service, "checkpoint", "remove", "ha", "one").returncode == 0
    assert cli(service, "vm", "set", "ha", "--ha", "on").returncode == 0
    taken = api.post("/vms/ha/checkpoints", json={"name": "two"})
    assert taken.status_code == 409, taken.text
    assert "cannot have checkpoints" in taken.json()["error"]["message"]
    assert api.get("/vms/ha/checkpoints").json()["count"] == 0
    assert api.delete("/vms/ha").status_code == 200
