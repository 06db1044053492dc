"""``vm export NAME DIR --from-backup ID`` through the real service (issue 16 part 2, "live
from a backup point"): a VM's point is exported while the VM runs, after its disk
changed, and the imported copy holds the data of the point, not the disk's current
data; the CLI prints the point; a point of another VM, an OVA from a point, an
unknown point, and an OVA export of the running VM itself are refused and leave
nothing. The same VM (no OS needed) also serves the OVF export of a VM with a checkpoint
(its disk read through Now's overlay) and of a Saved VM (the saved state listed as not
carried)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.service.harness import Service, act, running_service, wait_job
from viridian.cli.main import cli

VM = "backed"


def _done(api: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json(), 300)
    assert job["state"] == "completed", job
    return dict(job["result"])


def _write(disk: Path, pattern: int) -> None:
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} 1M 2M", str(disk)],
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def point(tmp_path_factory: pytest.TempPathFactory) \
        -> Iterator[tuple[Service, Path, dict[str, Any], Path]]:
    """VM ``backed`` Running (no OS: the BIOS waits) with a point (taken while it was
    Off: a live point is tests/backup's subject); the disk was changed after the point.
    Yields the service, a work folder, the point and a copy of the disk as it was at the
    point."""
    work = tmp_path_factory.mktemp("backup-export")
    disk = work / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    _write(disk, 0x41)
    at_point = work / "at-point.qcow2"
    shutil.copy(disk, at_point)
    (work / "target").mkdir()
    with running_service() as service, service.client() as api:
        created = api.post("/vms", json={"name": VM, "memory_mb": 128,
                                         "settings": {"ide": [{
                                             "controller": 0, "location": 0,
                                             "kind": "hard_disk", "path": str(disk)}]}})
        assert created.status_code == 201, created.text
        record = _done(api, api.post("/backups", json={"vm": VM,
                                                       "target": str(work / "target")}))
        _write(disk, 0x42)  # after the point
        act(api, VM, "start")
        yield service, work, record, at_point
        act(api, VM, "stop", check=False)


def test_export_from_a_point_while_running(
        point: tuple[Service, Path, dict[str, Any], Path]) -> None:
    service, work, record, at_point = point
    exports = work / "exports"
    exports.mkdir()
    with service.client() as api:
        assert api.get(f"/vms/{VM}").json()["state"] == "Running"
        result = _done(api, api.post(f"/vms/{VM}/export", json={
            "folder": str(exports), "from_backup": record["id"]}))
        assert (result["folder"], result["from_backup"], result["state"]) == (
            str(exports / VM), record["id"], "Off")
        assert sorted(p.name for p in exports.iterdir()) == [VM]
        vm = _done(api, api.post("/imports", json={"path": str(exports / VM), "mode": "copy",
                                                   "new_id": True, "name": "from-point"}))
        assert api.get(f"/vms/{VM}").json()["state"] == "Running"
    copy = vm["settings"]["ide"][0]["path"]
    same = subprocess.run(["qemu-img", "compare", "-U", str(at_point), copy],
                          capture_output=True, text=True)
    assert same.returncode == 0, same.stdout  # the point's data, not the disk's now


def test_cli_and_refusals(point: tuple[Service, Path, dict[str, Any], Path]) -> None:
    service, work, record, _ = point
    target = work / "cli"
    target.mkdir()
    env = {"VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    result = CliRunner().invoke(cli, ["vm", "export", VM, str(target), "--from-backup",
                                      record["id"]], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"exported {VM} as of backup {record['id']} ({record['created_at']}, " \
           f"{record['consistency']}-consistent) to {target / VM}" in result.output
    with service.client() as api:
        other = api.post("/vms", json={"name": "other", "memory_mb": 128})
        assert other.status_code == 201, other.text
        refusals = [
            (api.post("/vms/other/export", json={"folder": str(target), "from_backup":
                                                 record["id"]}), 400, "not of 'other'"),
            (api.post(f"/vms/{VM}/export", json={"folder": str(target), "format": "ova",
                                                 "from_backup": record["id"]}), 400,
             "format ova is not allowed with from_backup"),
            (api.post(f"/vms/{VM}/export", json={"folder": str(target),
                                                 "from_backup": "nope"}), 404,
             "no backup with id nope"),
            (api.post(f"/vms/{VM}/export", json={"folder": str(target),
                                                 "from_backup": record["id"]}), 409,
             "exists already"),
            (api.post(f"/vms/{VM}/export", json={"folder": str(work), "format": "ova"}), 409,
             f"cannot export VM '{VM}' while it is Running")]
        for answer, status, message in refusals:
            assert answer.status_code == status and message in answer.json()["error"][
                "message"], answer.text
    assert sorted(p.name for p in target.iterdir()) == [VM]


def test_ovf_export_with_a_checkpoint_and_saved(
        point: tuple[Service, Path, dict[str, Any], Path]) -> None:
    """The OVF disk is the VM's data now (Now's checkpoint overlay, not the base); the
    checkpoint and, for a Saved VM, the saved state are listed as not carried."""
    service, work, _, _ = point
    with service.client() as api:
        act(api, VM, "stop")
        _done(api, api.post(f"/vms/{VM}/checkpoints", json={"name": "cp1"}))
        folder = Path(api.get(f"/vms/{VM}").json()["folder"])
        files = [str(p) for p in folder.rglob("*.qcow2")]
        uses = api.post("/disks/uses", json={"paths": files}).json()["uses"]
        [overlay] = [u["path"] for u in uses if u["role"] == "overlay"]
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x43 1M 1M", overlay],
                       check=True, capture_output=True)
        ovf = work / "ovf"
        ovf.mkdir()
        result = _done(api, api.post(f"/vms/{VM}/export", json={"folder": str(ovf),
                                                                "format": "ovf"}))
        assert any("1 checkpoint(s): OVF has none" in u for u in result["unexpressed"])
        same = subprocess.run(["qemu-img", "compare", "-U", overlay,
                               str(ovf / VM / f"{VM}-disk1.vmdk")], capture_output=True,
                              text=True)
        assert same.returncode == 0, same.stdout
        act(api, VM, "start")
        act(api, VM, "save")
        result = _done(api, api.post(f"/vms/{VM}/export", json={"folder": str(work),
                                                                "format": "ova"}))
        assert result["state"] == "Saved" and (work / f"{VM}.ova").is_file()
        assert any(u.startswith("the saved state (memory): OVF has none")
                   for u in result["unexpressed"])
