"""The library's pure core: item formats, the upload protocol, generalisation, template
manifests, cloud-init seed files (valid YAML with the values given) and placement."""

from __future__ import annotations

import pytest
import yaml

from viridian.errors import BadRequest, Conflict, InvalidSetting
from viridian.library.cloudinit import (
    READY_FILE,
    Customisation,
    StaticAddress,
    User,
    numbered,
    seed_files,
)
from viridian.library.items import ItemKind, check_item_name, format_from_signature, kind_of
from viridian.library.placement import (
    HostFacts,
    VMNeeds,
    best,
    host_cpu_busy,
    rate,
    rate_all,
)
from viridian.library.templates import (
    TemplateDisk,
    TemplateManifest,
    disk_file_name,
    generalise,
    manifest_from_json,
)
from viridian.library.uploads import Upload, check_sha256, chunk_accepted
from viridian.model.codec import default_settings, to_dict
from viridian.model.merge import merge_settings

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB admin@host"


def test_formats_come_from_signatures_not_names() -> None:
    assert format_from_signature(b"vhdxfile" + b"\0" * 8, b"", b"") == "vhdx"
    assert format_from_signature(b"QFI\xfb\0\0\0\3", b"", b"") == "qcow2"
    assert format_from_signature(b"\0" * 8, b"conectix", b"") == "vpc"
    assert format_from_signature(b"\0" * 8, b"\0", b"CD001") == "iso"
    assert format_from_signature(b"\0" * 8, b"\0", b"\0") == "raw"
    assert kind_of("a.vhd", "raw") is ItemKind.DISK
    assert kind_of("boot.bin", "iso") is ItemKind.ISO
    assert kind_of("web.yaml", "raw") is ItemKind.SNIPPET
    assert kind_of("templates/base/v1/disk.vhd", "vpc") is ItemKind.TEMPLATE
    with pytest.raises(InvalidSetting, match="no folders"):
        check_item_name("../etc/passwd")


def test_upload_offsets_must_follow_and_fit() -> None:
    upload = Upload("u1", "default", "a.iso", 10, "0" * 64, 0, "/x.partial", "now")
    upload = chunk_accepted(upload, 0, 4)
    assert upload.offset == 4
    with pytest.raises(Conflict, match="resume at Upload-Offset 4; nothing was written"):
        chunk_accepted(upload, 0, 4)
    with pytest.raises(BadRequest, match="runs past the announced size 10"):
        chunk_accepted(upload, 4, 7)
    assert chunk_accepted(upload, 4, 6).to_dict()["complete"] is True
    with pytest.raises(InvalidSetting, match="64 hex digits"):
        check_sha256("abc")


def test_generalise_resets_what_must_differ_per_vm() -> None:
    settings = merge_settings(default_settings("src"), {
        "network_adapters": [{"switch": "Int", "mac_mode": "static", "mac": "00:15:5D:00:00:01"}],
        "ide": [{"controller": 0, "location": 0, "kind": "hard_disk", "path": "/d.vhd",
                 "format": "vpc"},
                {"controller": 1, "location": 0, "kind": "dvd", "path": "/x.iso"}]})
    general = to_dict(generalise(settings, "base"))
    assert general["name"] == "base"
    assert general["network_adapters"][0]["mac"] is None
    assert general["network_adapters"][0]["mac_mode"] == "dynamic"
    assert general["network_adapters"][0]["switch"] == "Int"
    assert [d["path"] for d in general["ide"]] == ["/d.vhd", None]


def test_template_manifest_round_trips_and_refuses_other_formats() -> None:
    manifest = TemplateManifest("base", 2, "t", "src", {"name": "base"},
                                (TemplateDisk("ide:0:0", "disk-ide-0-0.vhd", "vpc", 5, "ab"),))
    assert manifest_from_json(manifest.to_json()) == manifest
    assert disk_file_name("scsi:0:3", "qcow2") == "disk-scsi-0-3.qcow2"
    with pytest.raises(BadRequest, match="format 7 is unknown; this viridian reads 1"):
        manifest_from_json('{"format_version": 7}')


def test_seed_files_are_cloud_config_with_the_values_given() -> None:
    base = Customisation("x", "web", (User("admin", (KEY,)),),
                         StaticAddress("192.168.213.21/24", "192.168.213.1", ("1.1.1.1",)),
                         ("nginx",), ('echo "quoted" \\ back',))
    files = seed_files(numbered(base, 3, 3, "iid-3"))
    meta = yaml.safe_load(files.meta_data)
    user = yaml.safe_load(files.user_data)
    net = yaml.safe_load(files.network_config)
    assert files.user_data.startswith("#cloud-config\n")
    assert meta == {"instance-id": "iid-3", "local-hostname": "web-3"}
    assert user["users"] == [{"name": "admin", "ssh_authorized_keys": [KEY]}]
    assert user["runcmd"][0] == 'echo "quoted" \\ back'
    assert READY_FILE in user["runcmd"][-1]
    assert net["ethernets"]["eth0"]["addresses"] == ["192.168.213.23/24"]
    assert net["ethernets"]["eth0"]["gateway4"] == "192.168.213.1"
    dhcp = seed_files(Customisation("i", "h"))
    assert yaml.safe_load(dhcp.network_config)["ethernets"]["eth0"] == {"dhcp4": True}


@pytest.mark.parametrize(("custom", "message"), [
    (Customisation("i", "-bad"), "RFC 1123 host name"),
    (Customisation("i", "h", (User("Root!"),)), "user name of 1..32"),
    (Customisation("i", "h", (User("a", ("not a key",)),)), "OpenSSH public key"),
    (Customisation("i", "h", static=StaticAddress("10.0.0.5")), "IPv4 address with prefix"),
    (Customisation("i", "h", static=StaticAddress("10.0.0.5/24", "10.1.0.1")), "gateway"),
    (Customisation("i", "h", runcmd=("a\nb",)), "one line per command"),
])
def test_bad_customisations_are_refused_naming_the_rule(custom: Customisation,
                                                          message: str) -> None:
    with pytest.raises(InvalidSetting, match=message):
        seed_files(custom)


def test_numbering_refuses_addresses_past_the_subnet() -> None:
    base = Customisation("i", "h", static=StaticAddress("10.0.0.253/24"))
    with pytest.raises(InvalidSetting, match="room for 3 addresses"):
        numbered(base, 3, 3, "i3")


def _host(name: str, free_mb: int, busy: float | None, vms: frozenset[str] = frozenset(),
          networks: frozenset[str] = frozenset({"Int"})) -> HostFacts:
    return HostFacts(name, 16384, free_mb, busy, 100 << 30, 50 << 30, networks, vms)


def test_placement_rates_headroom_and_explains() -> None:
    needs = VMNeeds(1024, 1 << 30, frozenset({"Int"}), frozenset({"web-1"}), count=2)
    idle, busy = _host("idle", 14000, 5.0), _host("busy", 14000, 95.0)
    full = _host("full", 1000, 5.0)
    lonely = _host("lonely", 14000, 5.0, networks=frozenset())
    crowded = _host("crowded", 14000, 5.0, vms=frozenset({"web-1"}))
    ratings = rate_all([busy, full, lonely, crowded, idle], needs)
    assert [r.host for r in ratings][:3] == ["idle", "crowded", "busy"]
    assert best(ratings) == ratings[0] and ratings[0].stars == 4  # score 0.77: 4 stars
    assert rate(full, needs).stars == 0
    assert "not enough memory: 2048 MB needed, 1000 MB free" in rate(full, needs).reasons
    assert rate(lonely, needs).reasons == ("missing virtual switch: Int",)
    assert "anti-affinity: web-1 already here" in rate(crowded, needs).reasons
    assert rate(crowded, needs).stars == 3  # one star less
    assert "cpu: 95% busy over the last hour (5% headroom)" in rate(busy, needs).reasons
    assert best([rate(full, needs)]) is None


def test_cpu_headroom_comes_from_the_counters_window() -> None:
    # root 10% of 2 processors + two vCPUs at 60% and 20% of one processor each
    assert host_cpu_busy(10.0, [60.0, 20.0], 2) == 50.0
    assert host_cpu_busy(90.0, [100.0, 100.0], 2) == 100.0  # never past 100
    assert host_cpu_busy(None, [], 2) is None  # no counters kept
    needs = VMNeeds(512, 0, frozenset())
    fresh = HostFacts("h", 16384, 14000, 50.0, 100 << 30, 50 << 30, frozenset(),
                      frozenset(), cpu_window_s=600)
    assert "cpu: 50% busy over the last 10 min (50% headroom)" in rate(fresh, needs).reasons
    idle = HostFacts("i", 16384, 14000, 0.0, 100 << 30, 50 << 30, frozenset(), frozenset())
    assert rate(idle, needs).score > rate(fresh, needs).score
