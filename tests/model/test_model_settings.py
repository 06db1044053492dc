"""The settings dict: defaults, round trip, normalisation, merge."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from viridian.errors import BadRequest, InvalidSetting
from viridian.model import (
    DriveKind,
    IdeDrive,
    NetworkAdapter,
    StartAction,
    StopAction,
    VMSettings,
    default_settings,
    limits,
    merge_settings,
    settings_from_dict,
    to_dict,
    validate,
)

FULL: dict[str, Any] = {
    "name": "web-01 (Ünïcode ok)",
    "notes": "line one\nline two",
    "bios": {"num_lock": True, "startup_order": ["floppy", "net", "ide", "cd"]},
    "memory": {"startup_mb": 2048},
    "processor": {
        "count": 4,
        "reserve_pct": 10,
        "limit_pct": 90,
        "weight": 5000,
        "compatibility_mode": True,
    },
    "ide": [
        {
            "controller": 0,
            "location": 0,
            "kind": "hard_disk",
            "path": "/vms/a.vhd",
            "format": "vpc",
        },
        {
            "controller": 0,
            "location": 1,
            "kind": "hard_disk",
            "path": "/vms/b.vhdx",
            "format": None,
        },
        {"controller": 1, "location": 0, "kind": "dvd", "path": "/iso/x.iso", "format": "raw"},
        {"controller": 1, "location": 1, "kind": "dvd", "path": None, "format": None},
    ],
    "scsi": [
        {"controller": 0, "disks": [{"location": 0, "path": "/vms/s0.qcow2", "format": "qcow2"}]},
        {"controller": 3, "disks": [{"location": 63, "path": "/vms/s63.img", "format": "raw"}]},
    ],
    "network_adapters": [
        {
            "kind": "synthetic",
            "switch": "user",
            "mac_mode": "dynamic",
            "mac": None,
            "vlan_id": None,
            "trunk_vlans": [10, 20],
            "native_vlan": 5,
        },
        {
            "kind": "legacy",
            "switch": "External",
            "mac_mode": "static",
            "mac": "00:15:5D:01:02:03",
            "vlan_id": 4094,
            "trunk_vlans": [],
            "native_vlan": None,
        },
    ],
    "com1": {"kind": "pipe", "path": None, "address": None},
    "com2": {"kind": "pipe", "path": "/run/vm/com2.sock", "address": None},
    "floppy": {"path": "/vms/boot.vfd"},
    "automatic_start": {"action": "always", "delay_s": 30},
    "automatic_stop": {"action": "shut_down"},
    "integration_services": {
        "operating_system_shutdown": True,
        "time_synchronization": False,
        "heartbeat": True,
        "key_value_pair_exchange": False,
        "backup": True,
        "guest_services": False,
    },
    "checkpoint_folder": "/srv/checkpoints/web",
    "high_availability": {"ha": True, "priority": "high", "preferred_hosts": ["h1", "h2"],
                          "anti_affinity": ["sql"], "failback": True,
                          "preferred_site": "east", "failback_window": [22, 6]},
}


def test_defaults_are_hyper_v_new_vm_defaults() -> None:
    s = default_settings("new")
    assert s.memory.startup_mb == 512
    assert (s.processor.count, s.processor.reserve_pct, s.processor.limit_pct) == (1, 0, 100)
    assert s.processor.weight == 100
    assert not s.processor.compatibility_mode
    assert [str(d) for d in s.bios.startup_order] == ["cd", "ide", "net", "floppy"]
    assert s.bios.num_lock is False
    assert s.ide == (IdeDrive(controller=1, location=0, kind=DriveKind.DVD),)
    assert s.scsi == () and s.network_adapters == ()
    assert s.com1.kind == "none" and s.com2.kind == "none" and s.floppy.path is None
    assert s.automatic_start.action == StartAction.IF_RUNNING and s.automatic_start.delay_s == 0
    assert s.automatic_stop.action == StopAction.SAVE


def test_full_dict_round_trips_exactly() -> None:
    settings = settings_from_dict(FULL)
    assert to_dict(settings) == FULL
    assert settings_from_dict(to_dict(settings)) == settings


def test_default_dict_has_exactly_the_fixed_shape() -> None:
    d = to_dict(default_settings("x"))
    assert list(d) == list(FULL)
    for key in ("bios", "memory", "processor", "com1", "com2", "floppy"):
        assert list(d[key]) == list(FULL[key])
    assert d["ide"] == [
        {"controller": 1, "location": 0, "kind": "dvd", "path": None, "format": None}
    ]


def test_to_dict_is_plain_json_data() -> None:
    d = to_dict(settings_from_dict(FULL))
    assert type(d["ide"][0]["kind"]) is str
    assert type(d["bios"]["startup_order"]) is list


def test_input_dict_is_not_modified() -> None:
    data = copy.deepcopy(FULL)
    settings_from_dict(data)
    assert data == FULL


def test_mac_is_normalised_to_upper_case_colons() -> None:
    s = settings_from_dict(
        {"name": "m", "network_adapters": [{"mac_mode": "static", "mac": "00-15-5d-0a-bb-cc"}]}
    )
    assert s.network_adapters[0].mac == "00:15:5D:0A:BB:CC"


def test_non_canonical_mac_built_directly_is_refused() -> None:
    s = VMSettings(name="m", network_adapters=(NetworkAdapter(mac="00:15:5d:00:00:01"),))
    with pytest.raises(InvalidSetting) as caught:
        validate(s)
    assert str(caught.value) == (
        "invalid value '00:15:5d:00:00:01' for network_adapters[0].mac; "
        "allowed: the canonical form 00:15:5D:00:00:01"
    )


@pytest.mark.parametrize(
    "data",
    [
        {"memory": {"startup_mb": limits.MEMORY_MIN_MB}},
        {"memory": {"startup_mb": limits.MEMORY_MAX_MB}},
        {"processor": {"count": 4, "reserve_pct": 100, "limit_pct": 100, "weight": 10000}},
        {"processor": {"reserve_pct": 0, "limit_pct": 0, "weight": 1}},
        {"network_adapters": [{"kind": "synthetic"}] * 8 + [{"kind": "legacy"}] * 4},
        {"network_adapters": [{"vlan_id": 1}, {"vlan_id": 4094}]},
        {"scsi": [{"controller": c} for c in range(4)]},
        {"name": "x" * 100},
        {"name": "a.b ..c"},
        {"automatic_start": {"delay_s": 86400}},
        {"com1": {"kind": "pipe", "path": "/" + "p" * 106}},
        {"ide": []},
    ],
)
def test_boundary_values_are_accepted(data: dict[str, Any]) -> None:
    settings_from_dict({"name": "vm", **data})


def test_sixty_four_disks_on_one_controller_are_accepted() -> None:
    disks = [{"location": i, "path": f"/vms/d{i}.vhd"} for i in range(64)]
    s = settings_from_dict({"name": "vm", "scsi": [{"controller": 0, "disks": disks}]})
    assert len(s.scsi[0].disks) == 64


def test_missing_name_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match=r"^missing setting 'name'$"):
        settings_from_dict({})


# --- merge -------------------------------------------------------------------------


def test_merge_changes_only_the_named_keys() -> None:
    base = settings_from_dict(FULL)
    merged = merge_settings(base, {"processor": {"count": 2}, "notes": "changed"})
    expected = copy.deepcopy(FULL)
    expected["processor"]["count"] = 2
    expected["notes"] = "changed"
    assert to_dict(merged) == expected


def test_merge_replaces_lists_whole() -> None:
    base = settings_from_dict(FULL)
    merged = merge_settings(
        base, {"ide": [], "bios": {"startup_order": ["ide", "cd", "net", "floppy"]}}
    )
    assert merged.ide == ()
    assert [str(d) for d in merged.bios.startup_order] == ["ide", "cd", "net", "floppy"]
    assert merged.bios.num_lock is True  # sibling key kept


def test_merge_does_not_change_the_original() -> None:
    base = default_settings("a")
    merge_settings(base, {"memory": {"startup_mb": 1024}})
    assert base.memory.startup_mb == 512


def test_merge_validates_the_result() -> None:
    base = settings_from_dict({"name": "a", "processor": {"limit_pct": 50}})
    with pytest.raises(InvalidSetting) as caught:
        merge_settings(base, {"processor": {"reserve_pct": 60}})
    assert str(caught.value) == (
        "invalid value 60 for processor.reserve_pct; allowed: 0..50 (at most processor.limit_pct)"
    )


def test_merge_refuses_unknown_keys() -> None:
    with pytest.raises(BadRequest) as caught:
        merge_settings(default_settings("a"), {"processor": {"cores": 2}})
    assert str(caught.value) == (
        "unknown setting 'processor.cores'; allowed keys of processor: "
        "count, reserve_pct, limit_pct, weight, compatibility_mode"
    )


def test_merge_refuses_a_patch_that_is_not_an_object() -> None:
    with pytest.raises(BadRequest, match=r"^a settings patch must be an object, not list$"):
        merge_settings(default_settings("a"), [])  # type: ignore[arg-type]


def test_merge_can_rename_and_clear_optional_values() -> None:
    base = settings_from_dict(FULL)
    merged = merge_settings(base, {"name": "renamed", "floppy": {"path": None}})
    assert merged.name == "renamed" and merged.floppy.path is None


def test_host_switches_are_the_connected_virtual_switches_only() -> None:
    from viridian.model import USER_SWITCH, NetworkAdapter, host_switches

    adapters = [NetworkAdapter(switch="Lab"), NetworkAdapter(switch=None),
                NetworkAdapter(switch=USER_SWITCH), NetworkAdapter(switch="Lab"),
                NetworkAdapter(switch="Ext")]
    assert host_switches(adapters) == {"Lab", "Ext"}
    assert host_switches([]) == frozenset()
