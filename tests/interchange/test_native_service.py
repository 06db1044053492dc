"""Export and import through the real service, without a guest (issue 16, part 2): a VM
that is Off, with a dynamic VHD, a checkpoint (qcow2 layers over the VHD) and a NIC, is
exported; each of Hyper-V's three import modes brings it back with its checkpoints and
the same disk contents (``qemu-img compare`` of the chains); conflicts (id, name, disk,
MAC) are refused naming what conflicts and change nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.service.harness import Service, running_service, wait_job
from viridian.cli.main import cli

VM = "exp1"


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with running_service() as svc:
        yield svc


@pytest.fixture(scope="module")
def api(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


def _job(api: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    return wait_job(api, response.json())


def _ok(api: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    job = _job(api, response)
    assert job["state"] == "completed", job
    result = job["result"]
    assert isinstance(result, dict)
    return result


def _failed(api: httpx.Client, response: httpx.Response, code: str) -> str:
    job = _job(api, response)
    assert job["state"] == "failed", job
    assert job["error"]["code"] == code, job["error"]
    return str(job["error"]["message"])


def _write_pattern(path: Path, offset: int, data: bytes) -> None:
    """Guest-like data written into a disk image through QEMU's own tool."""
    raw = path.with_suffix(".pattern")
    raw.write_bytes(data)
    fmt = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(path)],
                                    check=True, capture_output=True).stdout)["format"]
    subprocess.run(["qemu-io", "-f", fmt, "-c", f"write -P 0x5a {offset} {len(data)}",
                    str(path)], check=True, capture_output=True)
    raw.unlink()


def _same_data(a: str, b: str) -> bool:
    done = subprocess.run(["qemu-img", "compare", "-U", a, b], capture_output=True)
    return done.returncode == 0


def _now_image(api: httpx.Client, vm: str) -> str:
    view = api.get(f"/vms/{vm}/checkpoints").json()
    return str(next(iter(view["now_disks"].values())))


@pytest.fixture(scope="module")
def exported(api: httpx.Client, service: Service, tmp_path_factory: pytest.TempPathFactory) \
        -> dict[str, Any]:
    disks = service.data_dir / "disks"
    created = api.post("/vms", json={
        "name": VM, "new_vhd": {"path": str(disks / "exp1.vhd"), "size": "64M"},
        "settings": {"network_adapters": [{"kind": "synthetic"}]}})
    assert created.status_code == 201, created.text
    _write_pattern(disks / "exp1.vhd", 0, b"A" * 65536)
    _ok(api, api.post(f"/vms/{VM}/checkpoints", json={"name": "cp1"}))
    _write_pattern(Path(_now_image(api, VM)), 1 << 20, b"B" * 65536)  # after cp1
    target = tmp_path_factory.mktemp("exports")
    result = _ok(api, api.post(f"/vms/{VM}/export", json={"folder": str(target)}))
    vm = api.get(f"/vms/{VM}").json()
    return {"folder": Path(result["folder"]), "result": result, "vm": vm,
            "now": _now_image(api, VM), "target": target}


def test_export_writes_one_package_folder(exported: dict[str, Any], api: httpx.Client) -> None:
    folder: Path = exported["folder"]
    assert folder == exported["target"] / VM
    assert [p.name for p in exported["target"].iterdir()] == [VM]  # no staging left
    assert (folder / "vm.json").is_file() and (folder / "export.json").is_file()
    assert (folder / "Virtual Hard Disks" / "exp1.vhd").is_file()
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["state"] == "Off" and len(manifest["checkpoints"]["checkpoints"]) == 1
    definition = json.loads((folder / "vm.json").read_text())
    assert definition["settings"]["ide"][0]["path"] == str(folder / "Virtual Hard Disks/exp1.vhd")
    # the package's current image reads as the VM's own chain
    now = manifest["checkpoints"]["now_disks"]["ide:0:0"]["image"]["path"]
    assert now.startswith(str(folder / "checkpoints"))
    assert _same_data(now, exported["now"])
    again = api.post(f"/vms/{VM}/export", json={"folder": str(exported["target"])})
    assert again.status_code == 409 and "exists already" in again.text


def test_refusals_name_the_conflict_and_change_nothing(
        exported: dict[str, Any], api: httpx.Client, service: Service) -> None:
    before = sorted(p.name for p in (service.data_dir / "vms").iterdir())
    path = str(exported["folder"])
    message = _failed(api, api.post("/imports", json={"path": path, "mode": "copy"}),
                      "conflict")
    assert f"used by the registered VM '{VM}'" in message and "nothing was changed" in message
    message = _failed(api, api.post("/imports", json={"path": path, "mode": "copy",
                                                       "new_id": True}), "conflict")
    assert f"name is used by the registered VM '{VM}'" in message
    bad = api.post("/imports", json={"path": path, "mode": "register_in_place",
                                     "new_id": True})
    assert bad.status_code == 400 and "keeps its id" in bad.text
    assert api.post("/imports", json={"path": "relative/x"}).status_code == 400
    assert sorted(p.name for p in (service.data_dir / "vms").iterdir()) == before
    assert [vm["name"] for vm in api.get("/vms").json()["vms"]] == [VM]


def test_copy_with_a_new_id(exported: dict[str, Any], api: httpx.Client) -> None:
    vm = _ok(api, api.post("/imports", json={"path": str(exported["folder"]), "mode": "copy",
                                             "new_id": True, "name": "exp1-copy"}))
    original = exported["vm"]
    assert vm["id"] != original["id"] and vm["state"] == "Off"
    assert vm["folder"].endswith(vm["id"])
    mine = vm["settings"]["network_adapters"][0]["mac"]
    assert mine and mine != original["settings"]["network_adapters"][0]["mac"]
    tree = api.get("/vms/exp1-copy/checkpoints").json()
    assert [cp["name"] for cp in tree["checkpoints"]] == ["cp1"]
    theirs = api.get(f"/vms/{VM}/checkpoints").json()["checkpoints"][0]["id"]
    assert tree["checkpoints"][0]["id"] != theirs
    assert _same_data(_now_image(api, "exp1-copy"), exported["now"])
    # the copy's checkpoint works: applying it brings back the data before cp1's writes
    _ok(api, api.post("/vms/exp1-copy/checkpoints/cp1/apply", json={}))
    assert not _same_data(_now_image(api, "exp1-copy"), exported["now"])
    assert api.delete("/vms/exp1-copy", params={"delete_files": "true"}).status_code == 200


def test_restore_keeps_the_id_after_the_vm_was_removed(
        exported: dict[str, Any], api: httpx.Client) -> None:
    kept = exported["target"] / "keep-now.qcow2"
    subprocess.run(["qemu-img", "convert", "-U", "-O", "qcow2", exported["now"], str(kept)],
                   check=True)
    assert api.delete(f"/vms/{VM}", params={"delete_files": "true"}).status_code == 200
    vm = _ok(api, api.post("/imports", json={"path": str(exported["folder"]), "mode": "copy"}))
    assert vm["id"] == exported["vm"]["id"] and vm["name"] == VM
    assert vm["settings"]["network_adapters"] == exported["vm"]["settings"]["network_adapters"]
    assert _same_data(_now_image(api, VM), str(kept))
    assert (exported["folder"] / "export.json").is_file()  # the package is untouched
    assert api.delete(f"/vms/{VM}", params={"delete_files": "true"}).status_code == 200


def test_register_in_place_of_a_moved_package(
        exported: dict[str, Any], api: httpx.Client, service: Service) -> None:
    moved = exported["target"] / "moved"
    shutil.copytree(exported["folder"], moved)
    disk = moved / "Virtual Hard Disks" / "exp1.vhd"
    holder = api.post("/vms", json={"name": "holder", "vhd": str(disk)})
    assert holder.status_code == 201, holder.text
    message = _failed(api, api.post("/imports", json={
        "path": str(moved), "mode": "register_in_place"}), "conflict")
    assert "already attached to VM 'holder'" in message
    assert api.get(f"/vms/{VM}").status_code == 404
    assert api.delete("/vms/holder").status_code == 200
    vm = _ok(api, api.post("/imports", json={"path": str(moved),
                                             "mode": "register_in_place"}))
    assert vm["folder"] == str(moved) and vm["id"] == exported["vm"]["id"]
    now = _now_image(api, VM)
    assert now.startswith(str(moved))
    backing = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", now],
                                        check=True, capture_output=True).stdout)
    assert backing["full-backing-filename"].startswith(str(moved))
    assert not (moved / "export.json").exists()  # consumed; vm.json rules the folder now
    assert json.loads((moved / "vm.json").read_text())["settings"]["ide"][0]["path"] == \
        str(disk)


def _cli(service: Service, *args: str, code: int = 0) -> str:
    env = {"VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, (args, result.exit_code, result.output)
    return result.output


def test_cli_export_and_import(exported: dict[str, Any], service: Service,
                               api: httpx.Client) -> None:
    """After the in-place registration above, the CLI exports that VM and imports a copy."""
    target = exported["target"] / "cli"
    target.mkdir()
    assert f"exported {VM} (Off, 1 checkpoints) to {target / VM}" in _cli(
        service, "vm", "export", VM, str(target))
    assert "say how to import" in _cli(service, "vm", "import", str(target / VM), code=2)
    assert "--new-id needs --copy" in _cli(service, "vm", "import", "--new-id",
                                           str(target / VM), code=2)
    refused = _cli(service, "vm", "import", "--copy", str(target / VM), code=4)
    assert f"used by the registered VM '{VM}'" in refused
    output = _cli(service, "vm", "import", "--copy", "--new-id", "--name", "exp1-cli",
                  str(target / VM))
    assert "registered exp1-cli as a copy with a new id: Off" in output
    assert api.get("/vms/exp1-cli/checkpoints").json()["count"] == 1
