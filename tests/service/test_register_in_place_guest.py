"""A VM removed with its files kept comes back from its folder's vm.json and boots."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.service.harness import Console, Service, act, state


def test_registered_in_place_vm_keeps_id_name_settings_and_starts(
    service: Service, api: httpx.Client, guest_iso: Path
) -> None:
    vm = api.post("/vms", json={"name": "phoenix", "memory_mb": 192,
                                "dvd": str(guest_iso)}).json()
    changed = api.patch("/vms/phoenix", json={"memory": {"startup_mb": 256},
                                              "notes": "comes back"}).json()
    assert api.delete("/vms/phoenix").status_code == 200
    assert (Path(vm["folder"]) / "vm.json").is_file()

    response = api.post("/vms/import", json={"folder": vm["folder"]})
    assert response.status_code == 201, response.text
    back = response.json()
    assert (back["id"], back["name"], back["settings"]) == (
        vm["id"], "phoenix", changed["settings"])
    assert back["memory_mb"] == 256

    act(api, "phoenix", "start")
    Console(service.data_dir, vm["id"]).wait_for(b"VIRIDIAN-GUEST READY")
    assert state(api, "phoenix") == "Running"
    act(api, "phoenix", "stop")
    assert state(api, "phoenix") == "Off"
