"""Defining VMs through the real service (issue 13 lane A): a refused request leaves
nothing on disk, names and ids are never ambiguous, request bodies are strict and capped,
disk copies are announced, every VM folder holds its vm.json and can be registered again,
and the access log names who called what without the token."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from tests.service.harness import Service
from viridian.cli.main import cli
from viridian.disks import new_differencing, new_dynamic

MB = 1024 * 1024


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["message"])


def _names(api: httpx.Client) -> list[str]:
    return [vm["name"] for vm in api.get("/vms").json()["vms"]]


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() \
        else []


def _cli(service: Service, *args: str, code: int = 0) -> str:
    env = {"VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, (args, result.exit_code, result.output)
    return result.output


# --- #2: a refused New Virtual Machine request leaves no disk behind ---------------------


def test_refused_vm_with_a_new_vhd_leaves_nothing_and_a_retry_works(
        api: httpx.Client, service: Service) -> None:
    disks = service.data_dir / "disks"
    slash = {"name": "a/b", "new_vhd": {"path": str(disks / "a" / "b.vhd"), "size": "64M"}}
    assert "name" in _error(api.post("/vms", json=slash), 400)
    assert _files_under(disks) == []

    assert api.post("/vms", json={"name": "web1"}).status_code == 201
    twin = {"name": "web1", "new_vhd": {"path": str(disks / "web1.vhd"), "size": "64M"}}
    assert "already exists" in _error(api.post("/vms", json=twin), 409)
    assert _files_under(disks) == []

    # a refusal found only after the disk was made (a missing SCSI disk) removes it too
    late = {"name": "web2", "new_vhd": {"path": str(disks / "web2.vhd"), "size": "64M"},
            "settings": {"scsi": [{"controller": 0, "disks": [
                {"location": 0, "path": str(service.data_dir / "missing.vhd")}]}]}}
    assert "missing.vhd" in _error(api.post("/vms", json=late), 404)
    assert _files_under(disks) == []
    assert _names(api) == ["web1"]

    retry = {"name": "web2", "new_vhd": {"path": str(disks / "web2.vhd"), "size": "64M"}}
    vm = api.post("/vms", json=retry).json()
    assert vm["settings"]["ide"][0]["path"] == str(disks / "web2.vhd")
    assert (disks / "web2.vhd").is_file()
    again = {"name": "web3", "new_vhd": {"path": str(disks / "web2.vhd"), "size": "64M"}}
    assert "already exists" in _error(api.post("/vms", json=again), 409)


# --- #3: names and ids are never ambiguous ----------------------------------------------


def test_a_name_may_not_be_another_vms_id_nor_blank(api: httpx.Client) -> None:
    web1 = api.post("/vms", json={"name": "web1"}).json()
    message = _error(api.post("/vms", json={"name": web1["id"]}), 409)
    assert "id of VM 'web1'" in message and "allowed:" in message
    api.post("/vms", json={"name": "web2"})
    message = _error(api.patch("/vms/web2", json={"name": web1["id"]}), 409)
    assert "id of VM 'web1'" in message
    assert api.get(f"/vms/{web1['id']}").json()["name"] == "web1"
    for blank in ("   ", " web3", "web3 "):
        message = _error(api.post("/vms", json={"name": blank}), 400)
        assert "without leading or trailing spaces" in message
    assert _names(api) == ["web1", "web2"]


# --- #6: strict, capped request bodies; no huge echoes -----------------------------------


def test_unknown_fields_are_refused_naming_the_allowed_ones(api: httpx.Client) -> None:
    message = _error(api.post("/vms", json={"name": "typo1", "memroy_mb": 256}), 400)
    assert "memroy_mb" in message and "memory_mb" in message and "processors" in message
    message = _error(api.post("/vms/import", json={"folder": "/x", "colour": 1}), 400)
    assert "colour" in message and "folder" in message
    assert _names(api) == []
    message = _error(api.post("/switches", json={"name": "s", "type": "private",
                                                  "vlan": 5}), 400)
    assert "'vlan'" in message and "allow_management_os" in message
    assert api.get("/switches").json()["switches"] == []


def test_bodies_are_capped_and_huge_values_are_not_echoed(
        api: httpx.Client, service: Service) -> None:
    huge = api.post("/vms", content=b'{"name": "' + b"x" * (2 * MB) + b'"}',
                    headers={"content-type": "application/json"})
    assert huge.status_code == 413
    assert "at most 1048576 bytes" in huge.json()["error"]["message"]

    long_name = api.post("/vms", json={"name": "n" * 500_000})
    assert long_name.status_code == 400
    assert len(long_name.content) < 2000, len(long_name.content)
    assert "…" in long_name.json()["error"]["message"]
    assert _names(api) == []


# --- #8: a copied differencing disk is announced -----------------------------------------


def test_a_differencing_vhd_copy_is_announced_and_shown(
        api: httpx.Client, service: Service, tmp_path: Path) -> None:
    parent, child = tmp_path / "base.vhd", tmp_path / "child.vhd"
    new_dynamic(parent, 8 * MB)
    new_differencing(child, parent)
    vm = api.post("/vms", json={"name": "web2", "vhd": str(child)}).json()
    copy = vm["settings"]["ide"][0]["path"]
    assert copy != str(child) and Path(copy).is_file()
    assert vm["notices"] == [
        f"differencing disk {child} was copied to standalone {copy}; the guest writes go "
        f"to {copy}, not to {child} or its parent"]
    shown = api.get("/vms/web2").json()
    assert shown["disk_copies"] == [
        {"drive": "IDE 0:0", "path": copy, "copied_from": str(child)}]
    assert f"copy of the differencing disk {child}" in _cli(service, "vm", "show", "web2")


def test_cli_new_with_a_differencing_vhd_prints_the_notice(
        service: Service, tmp_path: Path) -> None:
    parent, child = tmp_path / "base.vhd", tmp_path / "child.vhd"
    new_dynamic(parent, 8 * MB)
    new_differencing(child, parent)
    output = _cli(service, "vm", "new", "web3", "--vhd", str(child))
    assert f"note: differencing disk {child} was copied to standalone" in output


# --- #14 and #15: messages and validation gaps --------------------------------------------


def test_a_folder_as_disk_is_called_a_folder(api: httpx.Client, tmp_path: Path) -> None:
    message = _error(api.post("/vms", json={"name": "d", "vhd": str(tmp_path)}), 400)
    assert f"{tmp_path} is a folder" in message and "does not exist" not in message


def test_a_limit_below_the_reserve_names_the_limit(api: httpx.Client, service: Service) -> None:
    api.post("/vms", json={"name": "cpu", "settings": {"processor": {"reserve_pct": 20}}})
    message = _error(api.patch("/vms/cpu", json={"processor": {"limit_pct": 0}}), 400)
    assert message.startswith("invalid value 0 for processor.limit_pct")
    assert "20..100" in message and "processor.reserve_pct, which is 20" in message
    output = _cli(service, "vm", "set", "cpu", "--limit", "0", code=2)
    assert "processor.limit_pct" in output


def test_a_hard_link_does_not_get_around_one_vm_per_disk(
        api: httpx.Client, tmp_path: Path) -> None:
    disk, link = tmp_path / "disk.vhd", tmp_path / "other-name.vhd"
    new_dynamic(disk, 8 * MB)
    os.link(disk, link)
    assert api.post("/vms", json={"name": "one", "vhd": str(disk)}).status_code == 201
    message = _error(api.post("/vms", json={"name": "two", "vhd": str(link)}), 409)
    assert "already attached to VM 'one'" in message
    assert _names(api) == ["one"]


def test_a_com_pipe_in_a_missing_folder_is_refused_when_set(
        api: httpx.Client, tmp_path: Path) -> None:
    api.post("/vms", json={"name": "serial"})
    pipe = str(tmp_path / "missing" / "com1.sock")
    message = _error(api.patch("/vms/serial", json={"com1": {"kind": "pipe", "path": pipe}}),
                     400)
    assert "com1.path" in message and f"folder {tmp_path / 'missing'} does not exist" in message
    assert api.get("/vms/serial").json()["settings"]["com1"]["kind"] == "none"


# --- per-VM configuration file and register in place --------------------------------------


def _vm_json(vm: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads((Path(vm["folder"]) / "vm.json").read_text()))


def test_vm_json_follows_every_change_and_the_folder_registers_again(
        api: httpx.Client, service: Service) -> None:
    vm = api.post("/vms", json={"name": "keep", "memory_mb": 128}).json()
    assert _vm_json(vm)["format_version"] == 1
    changed = api.patch("/vms/keep", json={"notes": "kept", "memory": {"startup_mb": 160}})
    settings = changed.json()["settings"]
    on_disk = _vm_json(vm)
    assert (on_disk["id"], on_disk["name"], on_disk["settings"]) == (vm["id"], "keep", settings)

    assert api.delete("/vms/keep").status_code == 200
    assert _names(api) == []
    output = _cli(service, "vm", "import", "--register-in-place", vm["folder"])
    assert "registered keep in place" in output
    back = api.get("/vms/keep").json()
    assert (back["id"], back["name"], back["settings"], back["state"]) == (
        vm["id"], "keep", settings, "Off")
    assert back["created_at"] == vm["created_at"]

    message = _error(api.post("/vms/import", json={"folder": vm["folder"]}), 409)
    assert "already used by the registered VM 'keep'" in message
    assert "--register-in-place" in _cli(service, "vm", "import", vm["folder"], code=2)


def test_register_refuses_an_unknown_format_version_and_a_taken_name(
        api: httpx.Client, tmp_path: Path) -> None:
    vm = api.post("/vms", json={"name": "alpha"}).json()
    api.delete("/vms/alpha")
    data = _vm_json(vm)
    future = tmp_path / "future"
    future.mkdir()
    (future / "vm.json").write_text(json.dumps({**data, "format_version": 99}))
    message = _error(api.post("/vms/import", json={"folder": str(future)}), 400)
    assert "unknown format_version 99" in message and "reads format_version 1" in message

    api.post("/vms", json={"name": "alpha"})
    message = _error(api.post("/vms/import", json={"folder": vm["folder"]}), 409)
    assert "'alpha' already exists" in message
    assert "does not exist" in _error(
        api.post("/vms/import", json={"folder": str(tmp_path / "none")}), 404)
    assert _names(api) == ["alpha"]


# --- logging --------------------------------------------------------------------------------


def test_start_line_and_access_log(api: httpx.Client, service: Service) -> None:
    api.get("/vms")
    httpx.get(service.url + "/api/v1/host", headers={"Authorization": "Bearer wrong"})
    log = service.log.read_text()
    assert "INFO viridian: viridian serving on" in log
    lines = [line for line in log.splitlines() if "viridian.access" in line]
    assert any("method=GET path=/api/v1/vms status=200" in line and "who=token:" in line
               for line in lines), lines
    assert any("path=/api/v1/host status=401" in line for line in lines), lines
    assert service.token not in log


def test_removing_an_off_vm_keeps_a_saved_state_it_does_not_own(api: httpx.Client) -> None:
    """An Off VM's folder holding a saved memory state: another registration's (a cluster
    host that saved the VM into the shared folder). Removing this Off copy with its files
    kept leaves that state alone; only a Saved VM's removal discards its own."""
    vm = api.post("/vms", json={"name": "off-copy", "memory_mb": 64}).json()
    state = Path(vm["folder"]) / "saved-state.vmstate"
    state.write_bytes(b"another host's saved memory")
    assert api.get("/vms/off-copy").json()["state"] == "Off"
    removed = api.delete("/vms/off-copy")
    assert removed.status_code == 200, removed.text
    assert state.read_bytes() == b"another host's saved memory"
    assert (Path(vm["folder"]) / "vm.json").is_file()
    state.unlink()
