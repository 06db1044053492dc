"""Renaming VMs (`viridian vm rename OLD NEW`, POST /vms/{ref}/rename) on a real service:
the name changes everywhere it is shown, the files keep their id-based names, a name is
checked like a new VM's, and a running VM stays running."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.service.harness import Console, Service, act, state
from viridian.cli.main import cli


def _cli(service: Service, *args: str) -> tuple[int, str]:
    env = {"VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_rename_keeps_id_and_files_and_frees_the_old_name(
    service: Service, api: httpx.Client
) -> None:
    created = api.post("/vms", json={"name": "old-name", "memory_mb": 64}).json()
    renamed = api.post("/vms/old-name/rename", json={"name": "new-name"})
    assert renamed.status_code == 200, renamed.text
    shown = api.get("/vms/new-name").json()
    assert (shown["id"], shown["folder"]) == (created["id"], created["folder"])
    assert shown["settings"]["name"] == "new-name"
    assert Path(shown["folder"]).name == created["id"]
    assert api.get("/vms/old-name").status_code == 404
    assert [vm["name"] for vm in api.get("/vms").json()["vms"]] == ["new-name"]
    again = api.post("/vms", json={"name": "old-name", "memory_mb": 64})
    assert again.status_code == 201, again.text


def test_rename_checks_the_name_like_a_new_one_and_changes_nothing(
    service: Service, api: httpx.Client
) -> None:
    api.post("/vms", json={"name": "a", "memory_mb": 64})
    b_id = api.post("/vms", json={"name": "b", "memory_mb": 64}).json()["id"]
    taken = api.post("/vms/a/rename", json={"name": "b"})
    assert taken.status_code == 409
    assert taken.json()["error"]["message"] == (
        "a VM named 'b' already exists; nothing was changed")
    as_id = api.post("/vms/a/rename", json={"name": b_id})
    assert as_id.status_code == 409
    assert "that is the id of VM 'b'" in as_id.json()["error"]["message"]
    blank = api.post("/vms/a/rename", json={"name": "   "})
    assert blank.status_code == 400
    assert blank.json()["error"]["details"]["setting"] == "name"
    missing = api.post("/vms/nope/rename", json={"name": "x"})
    assert missing.status_code == 404
    assert sorted(vm["name"] for vm in api.get("/vms").json()["vms"]) == ["a", "b"]


def test_cli_rename_and_its_errors(service: Service, api: httpx.Client) -> None:
    api.post("/vms", json={"name": "c1", "memory_mb": 64})
    api.post("/vms", json={"name": "c2", "memory_mb": 64})
    assert _cli(service, "vm", "rename", "c1", "c3") == (0, "renamed VM 'c1' to 'c3'\n")
    code, output = _cli(service, "vm", "rename", "c3", "c2")
    assert code == 4
    assert "a VM named 'c2' already exists; nothing was changed" in output
    code, output = _cli(service, "vm", "rename", "missing", "c9")
    assert code == 3
    assert sorted(vm["name"] for vm in api.get("/vms").json()["vms"]) == ["c2", "c3"]


@pytest.mark.guest
def test_a_running_vm_is_renamed_and_runs_on(
    service: Service, api: httpx.Client, guest_iso: Path
) -> None:
    vm = api.post("/vms", json={"name": "run-old", "memory_mb": 256, "dvd": str(guest_iso)})
    assert vm.status_code == 201, vm.text
    console = Console(service.data_dir, vm.json()["id"])
    act(api, "run-old", "start")
    console.wait_for(b"VIRIDIAN-GUEST READY")
    pid = api.get("/vms/run-old").json()["pid"]
    assert _cli(service, "vm", "rename", "run-old", "run-new")[0] == 0
    shown = api.get("/vms/run-new").json()
    assert (shown["state"], shown["pid"]) == ("Running", pid)
    console.wait_ticks(1)  # the guest's clock runs on: it was not stopped or restarted
    act(api, "run-new", "stop")
    assert state(api, "run-new") == "Off"
