"""The uniqueness rules still hold with the catalog's usage index, and the cached
``GET /vms`` follows every change (issue 13, "Scale"; no timing is asserted).

One disk file per VM — by path, through a symbolic link, through a hard link — and one
adapter per MAC are refused with the holder named; after the holder is removed or
changed, the disk and the MAC can be used again; after a service restart every rule is
still enforced (the index is rebuilt from the catalog). A rolled-back transaction leaves
the index as the catalog is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.service.harness import Service
from viridian.cli.main import cli
from viridian.disks import new_dynamic
from viridian.model import settings_from_dict
from viridian.model.states import VMState
from viridian.service.catalog import Catalog, VMRecord
from viridian.service.vms.listing import SUMMARY_KEYS

MB = 1024 * 1024
MAC = "00:15:5D:AB:CD:01"


def _refusal(response: httpx.Response) -> str:
    assert response.status_code == 409, response.text
    return str(response.json()["error"]["message"])


def _names(api: httpx.Client) -> list[str]:
    return [vm["name"] for vm in api.get("/vms").json()["vms"]]


def _static_nic(mac: str) -> dict[str, object]:
    return {"network_adapters": [{"mac_mode": "static", "mac": mac}]}


def _assert_rules_hold(api: httpx.Client, disk: Path, tmp_path: Path) -> None:
    """VM 'one' holds ``disk`` and MAC; every way of taking them for 'two' is refused."""
    symlink, hard_link = tmp_path / "symlink.vhd", tmp_path / "hard-link.vhd"
    if not symlink.exists():
        symlink.symlink_to(disk)
        os.link(disk, hard_link)
    for path in (disk, symlink, hard_link):
        message = _refusal(api.post("/vms", json={"name": "two", "vhd": str(path)}))
        assert "already attached to VM 'one'" in message and "nothing was changed" in message
    message = _refusal(api.post("/vms", json={"name": "two", "settings": _static_nic(MAC)}))
    assert f"MAC address {MAC} of network adapter 1 is already used by VM 'one' " \
        "(network adapter 1)" in message
    assert _names(api) == ["one"]


def test_disks_and_macs_stay_unique_across_restart_and_free_after_removal(
        service: Service, tmp_path: Path) -> None:
    disk = tmp_path / "disk.vhd"
    new_dynamic(disk, 8 * MB)
    with service.client() as api:
        created = api.post("/vms", json={"name": "one", "vhd": str(disk),
                                         "settings": _static_nic(MAC)})
        assert created.status_code == 201, created.text
        _assert_rules_hold(api, disk, tmp_path)
    service.stop()
    service.start()
    with service.client() as api:
        _assert_rules_hold(api, disk, tmp_path)
        assert api.delete("/vms/one").status_code == 200
        again = api.post("/vms", json={"name": "two", "vhd": str(tmp_path / "hard-link.vhd"),
                                       "settings": _static_nic(MAC)})
        assert again.status_code == 201, again.text
        assert again.json()["settings"]["network_adapters"][0]["mac"] == MAC


def test_a_changed_vm_frees_its_old_disk_and_mac(api: httpx.Client, tmp_path: Path) -> None:
    first, second = tmp_path / "first.vhd", tmp_path / "second.vhd"
    for disk in (first, second):
        new_dynamic(disk, 8 * MB)
    body = {"name": "one", "vhd": str(first), "settings": _static_nic(MAC)}
    assert api.post("/vms", json=body).status_code == 201
    changed = api.patch("/vms/one", json={
        "ide": [{"controller": 0, "location": 0, "kind": "hard_disk", "path": str(second)}],
        **_static_nic("00:15:5D:AB:CD:02")})
    assert changed.status_code == 200, changed.text
    taken = api.post("/vms", json={"name": "two", "vhd": str(first),
                                   "settings": _static_nic(MAC)})
    assert taken.status_code == 201, taken.text
    message = _refusal(api.post("/vms", json={"name": "three", "vhd": str(second)}))
    assert "already attached to VM 'one'" in message


def test_read_only_media_may_be_shared(api: httpx.Client, tmp_path: Path) -> None:
    iso = tmp_path / "setup.iso"
    iso.write_bytes(b"\0" * 2048)
    for name in ("one", "two"):
        assert api.post("/vms", json={"name": name, "dvd": str(iso)}).status_code == 201
    assert _names(api) == ["one", "two"]


def test_a_rolled_back_transaction_leaves_the_index_as_the_catalog_is(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite")
    try:
        def record(path: str) -> VMRecord:
            settings = settings_from_dict({"name": "one", "ide": [
                {"controller": 0, "location": 0, "kind": "hard_disk", "path": path,
                 "format": "vpc"}]})
            return VMRecord("id-1", "one", settings, VMState.OFF, None, str(tmp_path),
                            "2026-01-01T00:00:00Z")
        catalog.insert_vm(record("/disks/a.vhd"))
        assert catalog.usage.disk_holder("/disks/a.vhd", None) is not None
        with pytest.raises(RuntimeError), catalog.transaction() as db:
            catalog.update_vm(record("/disks/b.vhd"), db)
            raise RuntimeError("the other half of the change failed")
        holder = catalog.usage.disk_holder("/disks/a.vhd", None)
        assert holder is not None and holder.vm_name == "one"
        assert catalog.usage.disk_holder("/disks/b.vhd", None) is None
    finally:
        catalog.close()


def test_the_cached_list_follows_every_change(service: Service) -> None:
    with service.client() as api:
        for name in ("alpha", "beta"):
            assert api.post("/vms", json={"name": name, "memory_mb": 128}).status_code == 201
        before = api.get("/vms").json()["vms"]
        assert [vm["settings"]["memory"]["startup_mb"] for vm in before] == [128, 128]
        assert api.patch("/vms/alpha", json={"memory": {"startup_mb": 256},
                                             "notes": "web"}).status_code == 200
        kvp = api.put("/vms/beta/integration/kvp", json={"items": {"role": "db"}})
        assert kvp.status_code == 200, kvp.text
        after = {vm["name"]: vm for vm in api.get("/vms").json()["vms"]}
        assert after["alpha"]["memory_mb"] == 256 and after["alpha"]["settings"]["notes"] == "web"
        assert after["beta"]["integration"]["host_kvp"] == {"role": "db"}
        assert after["alpha"] == api.get("/vms/alpha").json()
        summary = api.get("/vms", params={"view": "summary"}).json()["vms"]
        assert [sorted(vm) for vm in summary] == [sorted(SUMMARY_KEYS)] * 2
        assert summary[0] == {key: after["alpha"][key] for key in SUMMARY_KEYS}
        assert api.delete("/vms/beta").status_code == 200
        assert _names(api) == ["alpha"]
        env = {"VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
        listed = CliRunner().invoke(cli, ["vm", "list", "--json"], env=env)
        assert listed.exit_code == 0, listed.output
        assert json.loads(listed.output) == api.get("/vms").json()
        table = CliRunner().invoke(cli, ["vm", "list"], env=env)
        assert table.exit_code == 0, table.output
        assert table.output.splitlines()[1].split()[:4] == ["alpha", "Off", "1", "256"]


def test_the_list_in_pieces_is_the_same_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from viridian.service.vms import listing

    objects = [json.dumps({"name": f"vm-{n}", "pad": "x" * n}).encode() for n in range(40)]
    split = [(o[:5], o[5:9], o[9:]) for o in objects]  # any cut concatenates back
    for chunk_pieces in (1, 4, 50, 10_000):
        monkeypatch.setattr(listing, "CHUNK_PIECES", chunk_pieces)
        chunks = list(listing._pieces(split))
        assert json.loads(b"".join(chunks)) == {"vms": [json.loads(o) for o in objects]}
        assert len(chunks) > 3 or chunk_pieces == 10_000
    assert b"".join(listing._pieces([])) == b'{"vms":[]}'
