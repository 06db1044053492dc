"""Device routes of the real service without a guest: refusals with their text, MAC
uniqueness on the host, the dynamic pool across a service restart, console refusals."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.service.harness import Service


def disk(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_bytes(b"\0" * 512)
    return str(path)


def test_hardware_refusals_name_what_is_wrong(api: httpx.Client, tmp_path: Path) -> None:
    assert api.post("/vms", json={"name": "box"}).status_code == 201

    # 64 SCSI disks fit on controller 0; a 65th is refused.
    for n in range(64):
        reply = api.post(
            "/vms/box/disks",
            json={"controller": "scsi", "location": "0", "path": disk(tmp_path, f"s{n}.raw")},
        )
        assert reply.status_code == 200, reply.text
    reply = api.post(
        "/vms/box/disks",
        json={"controller": "scsi", "location": "0", "path": disk(tmp_path, "s64.raw")},
    )
    assert reply.status_code == 409
    assert reply.json()["error"]["message"].startswith(
        "SCSI controller 0 already holds 64 hard disks, the most a SCSI controller can hold"
    )

    # An occupied location, a DVD on SCSI, a missing file.
    for name, status in (("x.raw", 200), ("y.raw", 409)):
        reply = api.post(
            "/vms/box/disks",
            json={"controller": "scsi", "location": "1:10", "path": disk(tmp_path, name)},
        )
        assert reply.status_code == status, reply.text
    assert reply.json()["error"]["message"] == (
        f"SCSI 1:10 is already used by the hard disk {tmp_path}/x.raw; give a free location "
        "(or only the controller, --location 1, for the first free one); nothing was changed"
    )
    reply = api.post(
        "/vms/box/disks",
        json={
            "controller": "scsi",
            "location": "1:0",
            "dvd": True,
            "path": disk(tmp_path, "d.iso"),
        },
    )
    assert reply.status_code == 400
    assert "DVD drives attach to IDE only" in reply.json()["error"]["message"]
    reply = api.post(
        "/vms/box/disks",
        json={"controller": "ide", "location": "0:0", "path": str(tmp_path / "nothing.vhd")},
    )
    assert reply.status_code == 404 and "does not exist" in reply.json()["error"]["message"]
    settings = api.get("/vms/box").json()["settings"]
    assert len(settings["scsi"][0]["disks"]) == 64 and len(settings["ide"]) == 1
    assert [d["path"] for d in settings["scsi"][1]["disks"]] == [f"{tmp_path}/x.raw"]

    # Nothing to capture or attach to while Off.
    reply = api.get("/vms/box/screenshot")
    assert reply.status_code == 409 and "exists only while it runs" in reply.text


def test_mac_addresses_are_unique_on_the_host_and_the_pool_is_stable(
    service: Service, api: httpx.Client
) -> None:
    api.post("/vms", json={"name": "a"})
    api.post("/vms", json={"name": "b"})
    first = api.post("/vms/a/nics", json={"mac": "00:15:5D:12:34:56"})
    assert first.status_code == 200, first.text
    reply = api.post("/vms/b/nics", json={"mac": "00-15-5d-12-34-56"})
    assert reply.status_code == 409
    assert reply.json()["error"]["message"].startswith(
        "MAC address 00:15:5D:12:34:56 of network adapter 1 is already used by VM 'a' "
        "(network adapter 1); a MAC address must be unique on the host"
    )
    reply = api.post("/vms/b/nics", json={"mac": "01:00:5E:00:00:01"})
    assert reply.status_code == 400 and "multicast" in reply.json()["error"]["message"]

    dynamic_a = api.post("/vms/a/nics", json={}).json()["settings"]["network_adapters"][1]["mac"]
    service.stop()
    service.start()
    with service.client() as again:
        dynamic_b = again.post("/vms/b/nics", json={}).json()["settings"]["network_adapters"][0]
        shown_a = again.get("/vms/a").json()["settings"]["network_adapters"][1]["mac"]
    assert shown_a == dynamic_a  # stored with the VM: unchanged by a restart
    assert dynamic_b["mac"] != dynamic_a and dynamic_b["mac"][:14] == dynamic_a[:14]
    assert dynamic_a.startswith("00:15:5D:")


def test_console_needs_the_token_and_a_running_vm_with_a_pipe(
    service: Service, api: httpx.Client
) -> None:
    api.post("/vms", json={"name": "c"})
    url = service.url.replace("http://", "ws://") + "/api/v1/vms/c/console?com=1"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10)
    assert refused.value.response.status_code == 403
    with connect(
        url, additional_headers={"Authorization": f"Bearer {service.token}"}, open_timeout=10
    ) as ws:
        message = ws.recv(timeout=10)
    assert isinstance(message, str) and "exists only while it runs" in message
