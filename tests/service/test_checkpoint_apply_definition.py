"""Applying a checkpoint changes the VM's settings; its configuration file follows
(docs/api.md, "VM configuration file"): a VM folder never holds a definition the
catalog has left behind. A VM that stays Off: no guest needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Service, wait_job

pytestmark = pytest.mark.xdist_group("checkpoint_apply_definition")


def _definition(api: httpx.Client, vm: str) -> dict[str, Any]:
    folder = Path(api.get(f"/vms/{vm}").json()["folder"])
    data: dict[str, Any] = json.loads((folder / "vm.json").read_text())
    return data


def _job(api: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json())
    assert job["state"] == "completed", job
    return job


def test_applying_an_older_checkpoint_rewrites_vm_json(
        service: Service, api: httpx.Client, tmp_path: Path) -> None:
    disk = tmp_path / "cfg.raw"
    disk.write_bytes(b"\0" * 2**20)
    created = api.post("/vms", json={"name": "cfg", "vhd": str(disk), "memory_mb": 256,
                                     "settings": {"notes": "first"}})
    assert created.status_code == 201, created.text
    _job(api, api.post("/vms/cfg/checkpoints", json={"name": "before"}))
    changed = api.patch("/vms/cfg", json={"memory": {"startup_mb": 512}, "notes": "second"})
    assert changed.status_code == 200, changed.text
    assert _definition(api, "cfg")["settings"]["memory"]["startup_mb"] == 512

    _job(api, api.post("/vms/cfg/checkpoints/before/apply"))

    settings = _definition(api, "cfg")["settings"]
    assert (settings["memory"]["startup_mb"], settings["notes"]) == (256, "first")
    assert settings == api.get("/vms/cfg").json()["settings"]
