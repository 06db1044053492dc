"""Invalid settings, each with the exact error it must produce (virtinst style).

Each case is a partial settings dict (merged onto ``{"name": "vm"}``), the error class,
the setting the error must name and the full message. The meta-test
(``test_model_coverage.py``) counts every ``setting`` here as exercised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from viridian.errors import BadRequest, InvalidSetting, ViridianError

NAME_ALLOWED = (
    "1..100 characters without '/', NUL or control characters, not '.' or '..', "
    "not blank and without leading or trailing spaces"
)
PATH_ALLOWED = "an absolute path without NUL characters"
MAC_ALLOWED = "a unicast MAC address xx:xx:xx:xx:xx:xx (or xx-xx-..), not all zeros"
ORDER_ALLOWED = "a permutation of cd, ide, net, floppy (each exactly once)"
FORMAT_ALLOWED = "null or vpc, vhdx, qcow2, raw"


@dataclass(frozen=True)
class Case:
    id: str
    data: dict[str, Any]
    setting: str
    message: str
    error: type[ViridianError] = InvalidSetting


def hd(
    controller: int, location: int, path: str | None = "/vms/a.vhd", **extra: Any
) -> dict[str, Any]:
    return {
        "controller": controller,
        "location": location,
        "kind": "hard_disk",
        "path": path,
        "format": "vpc",
        **extra,
    }


def nic(**extra: Any) -> dict[str, Any]:
    return {"kind": "synthetic", **extra}


def iv(setting: str, value: str, allowed: str, why: str = "") -> str:
    """The text of an InvalidSetting; ``value`` is already repr()-ed."""
    reason = f" ({why})" if why else ""
    return f"invalid value {value} for {setting}{reason}; allowed: {allowed}"


CASES: list[Case] = [
    # name and notes
    Case("name-empty", {"name": ""}, "name", iv("name", "''", NAME_ALLOWED)),
    Case("name-long", {"name": "x" * 101}, "name", iv("name", repr("x" * 101), NAME_ALLOWED)),
    Case("name-slash", {"name": "a/b"}, "name", iv("name", "'a/b'", NAME_ALLOWED)),
    Case("name-dot", {"name": "."}, "name", iv("name", "'.'", NAME_ALLOWED)),
    Case("name-dotdot", {"name": ".."}, "name", iv("name", "'..'", NAME_ALLOWED)),
    Case("name-control", {"name": "a\x07b"}, "name", iv("name", "'a\\x07b'", NAME_ALLOWED)),
    Case("name-nul", {"name": "a\0"}, "name", iv("name", "'a\\x00'", NAME_ALLOWED)),
    Case("name-type", {"name": 7}, "name", iv("name", "7", "a string")),
    Case("name-spaces", {"name": "   "}, "name",
         iv("name", "'   '", NAME_ALLOWED, "only spaces")),
    Case("name-leading-space", {"name": " web1"}, "name",
         iv("name", "' web1'", NAME_ALLOWED, "leading or trailing spaces")),
    Case("name-trailing-space", {"name": "web1 "}, "name",
         iv("name", "'web1 '", NAME_ALLOWED, "leading or trailing spaces")),
    Case(
        "notes-long",
        {"notes": "n" * 4097},
        "notes",
        iv(
            "notes",
            repr("n" * 40 + "..."),
            "text of at most 4096 characters without NUL",
            "4097 characters",
        ),
    ),
    Case(
        "checkpoint-folder-relative",
        {"checkpoint_folder": "snaps"},
        "checkpoint_folder",
        iv("checkpoint_folder", "'snaps'", PATH_ALLOWED),
    ),
    # BIOS
    Case(
        "order-short",
        {"bios": {"startup_order": ["cd", "ide", "net"]}},
        "bios.startup_order",
        iv("bios.startup_order", "['cd', 'ide', 'net']", ORDER_ALLOWED),
    ),
    Case(
        "order-duplicate",
        {"bios": {"startup_order": ["cd", "cd", "net", "floppy"]}},
        "bios.startup_order",
        iv("bios.startup_order", "['cd', 'cd', 'net', 'floppy']", ORDER_ALLOWED),
    ),
    Case(
        "order-unknown",
        {"bios": {"startup_order": ["cd", "ide", "net", "usb"]}},
        "bios.startup_order[3]",
        iv("bios.startup_order[3]", "'usb'", "cd, ide, net, floppy"),
    ),
    Case(
        "order-type",
        {"bios": {"startup_order": "cd,ide,net,floppy"}},
        "bios.startup_order",
        iv(
            "bios.startup_order",
            "'cd,ide,net,floppy'",
            "a list: a permutation of cd, ide, net, floppy",
        ),
    ),
    Case(
        "numlock-type",
        {"bios": {"num_lock": "on"}},
        "bios.num_lock",
        iv("bios.num_lock", "'on'", "true or false"),
    ),
    # memory
    Case(
        "memory-low",
        {"memory": {"startup_mb": 7}},
        "memory.startup_mb",
        iv("memory.startup_mb", "7", "an integer 8..65536 (MB)"),
    ),
    Case(
        "memory-high",
        {"memory": {"startup_mb": 65537}},
        "memory.startup_mb",
        iv("memory.startup_mb", "65537", "an integer 8..65536 (MB)"),
    ),
    Case(
        "memory-string",
        {"memory": {"startup_mb": "512MB"}},
        "memory.startup_mb",
        iv("memory.startup_mb", "'512MB'", "an integer 8..65536 (MB)"),
    ),
    Case(
        "memory-bool",
        {"memory": {"startup_mb": True}},
        "memory.startup_mb",
        iv("memory.startup_mb", "True", "an integer 8..65536 (MB)"),
    ),
    Case(
        "memory-not-object",
        {"memory": 512},
        "memory",
        iv("memory", "512", "an object with keys startup_mb"),
    ),
    # processor
    Case(
        "cpu-zero",
        {"processor": {"count": 0}},
        "processor.count",
        iv("processor.count", "0", "an integer 1..4"),
    ),
    Case(
        "cpu-five",
        {"processor": {"count": 5}},
        "processor.count",
        iv("processor.count", "5", "an integer 1..4"),
    ),
    Case(
        "reserve-negative",
        {"processor": {"reserve_pct": -1}},
        "processor.reserve_pct",
        iv("processor.reserve_pct", "-1", "an integer 0..100 (percent)"),
    ),
    Case(
        "limit-high",
        {"processor": {"limit_pct": 101}},
        "processor.limit_pct",
        iv("processor.limit_pct", "101", "an integer 0..100 (percent)"),
    ),
    Case(
        "reserve-over-limit",
        {"processor": {"reserve_pct": 60, "limit_pct": 50}},
        "processor.reserve_pct",
        iv("processor.reserve_pct", "60", "0..50 (at most processor.limit_pct)"),
    ),
    Case(
        "weight-zero",
        {"processor": {"weight": 0}},
        "processor.weight",
        iv("processor.weight", "0", "an integer 1..10000"),
    ),
    Case(
        "weight-high",
        {"processor": {"weight": 10001}},
        "processor.weight",
        iv("processor.weight", "10001", "an integer 1..10000"),
    ),
    Case(
        "compat-type",
        {"processor": {"compatibility_mode": 1}},
        "processor.compatibility_mode",
        iv("processor.compatibility_mode", "1", "true or false"),
    ),
    # IDE
    Case(
        "ide-controller",
        {"ide": [hd(2, 0)]},
        "ide[0].controller",
        iv("ide[0].controller", "2", "an integer 0..1"),
    ),
    Case(
        "ide-location",
        {"ide": [hd(0, 2)]},
        "ide[0].location",
        iv("ide[0].location", "2", "an integer 0..1"),
    ),
    Case(
        "ide-kind",
        {"ide": [hd(0, 0, kind="floppy")]},
        "ide[0].kind",
        iv("ide[0].kind", "'floppy'", "hard_disk, dvd"),
    ),
    Case(
        "ide-hd-without-path",
        {"ide": [hd(0, 0, path=None, format=None)]},
        "ide[0].path",
        iv("ide[0].path", "None", "a path to a virtual hard disk (a hard disk drive needs one)"),
    ),
    Case(
        "ide-slot-taken",
        {"ide": [hd(0, 1), hd(0, 1, path="/vms/b.vhd")]},
        "ide[1]",
        iv("ide[1]", "'IDE 0:1'", "a free location", "IDE 0:1 is already used by ide[0]"),
    ),
    Case(
        "ide-format",
        {"ide": [hd(0, 0, format="vmdk")]},
        "ide[0].format",
        iv("ide[0].format", "'vmdk'", FORMAT_ALLOWED),
    ),
    Case(
        "dvd-empty-with-format",
        {"ide": [{"controller": 1, "location": 0, "kind": "dvd", "format": "raw"}]},
        "ide[0].format",
        iv("ide[0].format", "'raw'", "null for an empty DVD drive"),
    ),
    Case(
        "ide-relative-path",
        {"ide": [hd(0, 0, path="disk.vhd")]},
        "ide[0].path",
        iv("ide[0].path", "'disk.vhd'", PATH_ALLOWED),
    ),
    Case(
        "ide-not-list",
        {"ide": {}},
        "ide",
        iv("ide", "{}", "a list of IDE drives"),
    ),
    Case(
        "ide-missing-controller",
        {"ide": [{"location": 0, "kind": "dvd"}]},
        "ide[0].controller",
        "missing setting 'ide[0].controller'",
        BadRequest,
    ),
    # SCSI
    Case(
        "scsi-controller",
        {"scsi": [{"controller": 4, "disks": []}]},
        "scsi[0].controller",
        iv("scsi[0].controller", "4", "an integer 0..3"),
    ),
    Case(
        "scsi-controller-twice",
        {"scsi": [{"controller": 1}, {"controller": 1}]},
        "scsi[1].controller",
        iv(
            "scsi[1].controller",
            "1",
            "a controller number not used by another SCSI controller",
            "already used by scsi[0]",
        ),
    ),
    Case(
        "scsi-location",
        {"scsi": [{"controller": 0, "disks": [{"location": 64, "path": "/vms/s.vhdx"}]}]},
        "scsi[0].disks[0].location",
        iv("scsi[0].disks[0].location", "64", "an integer 0..63"),
    ),
    Case(
        "scsi-location-taken",
        {
            "scsi": [
                {
                    "controller": 2,
                    "disks": [
                        {"location": 5, "path": "/vms/s1.vhdx"},
                        {"location": 5, "path": "/vms/s2.vhdx"},
                    ],
                }
            ]
        },
        "scsi[0].disks[1]",
        iv(
            "scsi[0].disks[1]",
            "'SCSI 2:5'",
            "a free location",
            "SCSI 2:5 is already used by scsi[0].disks[0]",
        ),
    ),
    Case(
        "scsi-65-disks",
        {
            "scsi": [
                {
                    "controller": 0,
                    "disks": [{"location": i % 64, "path": f"/vms/s{i}.vhd"} for i in range(65)],
                }
            ]
        },
        "scsi[0].disks",
        iv("scsi[0].disks", "'65 disks'", "at most 64 disks per SCSI controller"),
    ),
    Case(
        "scsi-dvd",
        {"scsi": [{"controller": 0, "disks": [{"location": 0, "kind": "dvd", "path": "/i.iso"}]}]},
        "scsi[0].disks[0].kind",
        iv(
            "scsi[0].disks[0].kind",
            "'dvd'",
            "SCSI controllers hold hard disks only",
            "DVD drives attach to IDE only",
        ),
    ),
    Case(
        "scsi-missing-path",
        {"scsi": [{"controller": 0, "disks": [{"location": 0}]}]},
        "scsi[0].disks[0].path",
        "missing setting 'scsi[0].disks[0].path'",
        BadRequest,
    ),
    Case(
        "scsi-relative-path",
        {"scsi": [{"controller": 0, "disks": [{"location": 0, "path": "s.vhd"}]}]},
        "scsi[0].disks[0].path",
        iv("scsi[0].disks[0].path", "'s.vhd'", PATH_ALLOWED),
    ),
    Case(
        "scsi-format",
        {"scsi": [{"controller": 0, "disks": [{"location": 0, "path": "/s", "format": "vdi"}]}]},
        "scsi[0].disks[0].format",
        iv("scsi[0].disks[0].format", "'vdi'", FORMAT_ALLOWED),
    ),
    # disk attached twice
    Case(
        "twice-ide-scsi",
        {
            "ide": [hd(0, 0, path="/vms/a.vhd")],
            "scsi": [{"controller": 0, "disks": [{"location": 3, "path": "/vms/./a.vhd"}]}],
        },
        "scsi[0].disks[0].path",
        iv(
            "scsi[0].disks[0].path",
            "'/vms/./a.vhd'",
            "an image not attached elsewhere in this VM",
            "disk attached twice: also at ide[0].path",
        ),
    ),
    Case(
        "twice-floppy",
        {"ide": [hd(0, 0, path="/vms/f.vfd")], "floppy": {"path": "/vms/f.vfd"}},
        "floppy.path",
        iv(
            "floppy.path",
            "'/vms/f.vfd'",
            "an image not attached elsewhere in this VM",
            "disk attached twice: also at ide[0].path",
        ),
    ),
    Case(
        "floppy-relative",
        {"floppy": {"path": "f.vfd"}},
        "floppy.path",
        iv("floppy.path", "'f.vfd'", PATH_ALLOWED),
    ),
    # network adapters
    Case(
        "nic-9-synthetic",
        {"network_adapters": [nic() for _ in range(9)]},
        "network_adapters",
        iv("network_adapters", "'9 synthetic adapters'", "at most 8 synthetic adapters"),
    ),
    Case(
        "nic-5-legacy",
        {"network_adapters": [nic(kind="legacy") for _ in range(5)]},
        "network_adapters",
        iv("network_adapters", "'5 legacy adapters'", "at most 4 legacy adapters"),
    ),
    Case(
        "nic-kind",
        {"network_adapters": [nic(kind="e1000")]},
        "network_adapters[0].kind",
        iv("network_adapters[0].kind", "'e1000'", "synthetic, legacy"),
    ),
    Case(
        "nic-mac-mode",
        {"network_adapters": [nic(mac_mode="random")]},
        "network_adapters[0].mac_mode",
        iv("network_adapters[0].mac_mode", "'random'", "dynamic, static"),
    ),
    Case(
        "nic-static-without-mac",
        {"network_adapters": [nic(mac_mode="static")]},
        "network_adapters[0].mac",
        iv("network_adapters[0].mac", "None", MAC_ALLOWED, "a static MAC needs one"),
    ),
    Case(
        "nic-mac-multicast",
        {"network_adapters": [nic(mac_mode="static", mac="01:00:5E:00:00:01")]},
        "network_adapters[0].mac",
        iv("network_adapters[0].mac", "'01:00:5E:00:00:01'", MAC_ALLOWED, "multicast address"),
    ),
    Case(
        "nic-mac-zero",
        {"network_adapters": [nic(mac_mode="static", mac="00-00-00-00-00-00")]},
        "network_adapters[0].mac",
        iv("network_adapters[0].mac", "'00-00-00-00-00-00'", MAC_ALLOWED, "all zeros"),
    ),
    Case(
        "nic-mac-short",
        {"network_adapters": [nic(mac_mode="static", mac="00:15:5D:00:00")]},
        "network_adapters[0].mac",
        iv("network_adapters[0].mac", "'00:15:5D:00:00'", MAC_ALLOWED),
    ),
    Case(
        "nic-mac-mixed-separators",
        {"network_adapters": [nic(mac_mode="static", mac="00:15-5D:00:00:01")]},
        "network_adapters[0].mac",
        iv("network_adapters[0].mac", "'00:15-5D:00:00:01'", MAC_ALLOWED),
    ),
    Case(
        "nic-vlan-zero",
        {"network_adapters": [nic(vlan_id=0)]},
        "network_adapters[0].vlan_id",
        iv("network_adapters[0].vlan_id", "0", "an integer 1..4094"),
    ),
    Case(
        "nic-vlan-4095",
        {"network_adapters": [nic(vlan_id=4095)]},
        "network_adapters[0].vlan_id",
        iv("network_adapters[0].vlan_id", "4095", "an integer 1..4094"),
    ),
    Case(
        "nic-vlan-type",
        {"network_adapters": [nic(vlan_id="10")]},
        "network_adapters[0].vlan_id",
        iv("network_adapters[0].vlan_id", "'10'", "null or an integer 1..4094"),
    ),
    Case(
        "nic-trunk-vlan-4095",
        {"network_adapters": [nic(trunk_vlans=[10, 4095])]},
        "network_adapters[0].trunk_vlans[1]",
        iv("network_adapters[0].trunk_vlans[1]", "4095", "an integer 1..4094"),
    ),
    Case(
        "nic-trunk-twice",
        {"network_adapters": [nic(trunk_vlans=[10, 10])]},
        "network_adapters[0].trunk_vlans[1]",
        iv("network_adapters[0].trunk_vlans[1]", "10", "each VLAN id once", "listed twice"),
    ),
    Case(
        "nic-trunk-and-access",
        {"network_adapters": [nic(trunk_vlans=[10], vlan_id=20)]},
        "network_adapters[0].vlan_id",
        iv("network_adapters[0].vlan_id", "20",
           "null on a trunk (its untagged VLAN is native_vlan)",
           "an adapter is in access or in trunk mode"),
    ),
    Case(
        "nic-native-without-trunk",
        {"network_adapters": [nic(native_vlan=5)]},
        "network_adapters[0].native_vlan",
        iv("network_adapters[0].native_vlan", "5",
           "null unless trunk_vlans is set (an access port uses vlan_id)"),
    ),
    Case(
        "nic-native-zero",
        {"network_adapters": [nic(trunk_vlans=[10], native_vlan=0)]},
        "network_adapters[0].native_vlan",
        iv("network_adapters[0].native_vlan", "0", "an integer 1..4094"),
    ),
    Case(
        "nic-switch-empty",
        {"network_adapters": [nic(switch="")]},
        "network_adapters[0].switch",
        iv(
            "network_adapters[0].switch",
            "''",
            "null (not connected) or a switch name of 1..100 characters without control characters",
        ),
    ),
    # COM ports
    Case(
        "com-kind",
        {"com1": {"kind": "serial"}},
        "com1.kind",
        iv("com1.kind", "'serial'", "none, pipe, remote"),
    ),
    Case(
        "com-remote-without-address",
        {"com1": {"kind": "remote"}},
        "com1.address",
        iv(
            "com1.address",
            "None",
            "HOST:PORT with a host name, IPv4 address or [IPv6] address and a port 1-65535",
            "a remote COM port needs one",
        ),
    ),
    Case(
        "com-remote-bad-port",
        {"com2": {"kind": "remote", "address": "example.net:70000"}},
        "com2.address",
        iv(
            "com2.address",
            "'example.net:70000'",
            "HOST:PORT with a host name, IPv4 address or [IPv6] address and a port 1-65535",
        ),
    ),
    Case(
        "com-remote-with-path",
        {"com1": {"kind": "remote", "address": "h:1", "path": "/run/x.sock"}},
        "com1.path",
        iv("com1.path", "'/run/x.sock'", "null when kind is 'remote' (it connects to address)"),
    ),
    Case(
        "com-pipe-with-address",
        {"com1": {"kind": "pipe", "address": "h:1"}},
        "com1.address",
        iv("com1.address", "'h:1'", "null unless kind is 'remote' (HOST:PORT)"),
    ),
    Case(
        "com-none-with-path",
        {"com2": {"kind": "none", "path": "/run/x.sock"}},
        "com2.path",
        iv("com2.path", "'/run/x.sock'", "null when kind is 'none' (a path needs kind 'pipe')"),
    ),
    Case(
        "com-relative",
        {"com1": {"kind": "pipe", "path": "x.sock"}},
        "com1.path",
        iv("com1.path", "'x.sock'", PATH_ALLOWED),
    ),
    Case(
        "com-too-long",
        {"com1": {"kind": "pipe", "path": "/" + "p" * 107}},
        "com1.path",
        iv(
            "com1.path",
            repr("/" + "p" * 107),
            "a path of at most 107 bytes (UNIX socket limit)",
            "108 bytes",
        ),
    ),
    Case(
        "com-same-pipe",
        {
            "com1": {"kind": "pipe", "path": "/run/c.sock"},
            "com2": {"kind": "pipe", "path": "/run/c.sock"},
        },
        "com2.path",
        iv("com2.path", "'/run/c.sock'", "a pipe path different from com1.path"),
    ),
    # automatic actions
    Case(
        "start-action",
        {"automatic_start": {"action": "sometimes"}},
        "automatic_start.action",
        iv("automatic_start.action", "'sometimes'", "nothing, if_running, always"),
    ),
    Case(
        "start-delay-negative",
        {"automatic_start": {"delay_s": -1}},
        "automatic_start.delay_s",
        iv("automatic_start.delay_s", "-1", "an integer 0..86400 (seconds)"),
    ),
    Case(
        "start-delay-high",
        {"automatic_start": {"delay_s": 86401}},
        "automatic_start.delay_s",
        iv("automatic_start.delay_s", "86401", "an integer 0..86400 (seconds)"),
    ),
    Case(
        "stop-action",
        {"automatic_stop": {"action": "hibernate"}},
        "automatic_stop.action",
        iv("automatic_stop.action", "'hibernate'", "save, turn_off, shut_down"),
    ),
    # unknown keys
    Case(
        "unknown-top-level",
        {"colour": "green"},
        "colour",
        "unknown setting 'colour'; allowed keys: name, notes, bios, memory, processor, ide, "
        "scsi, network_adapters, com1, com2, floppy, automatic_start, automatic_stop, "
        "integration_services, checkpoint_folder, high_availability",
        BadRequest,
    ),
    Case(
        "ha-priority-unknown",
        {"high_availability": {"priority": "urgent"}},
        "high_availability.priority",
        "invalid value 'urgent' for high_availability.priority; allowed: high, medium, low, "
        "none",
    ),
    Case(
        "ha-preferred-hosts-not-names",
        {"high_availability": {"preferred_hosts": [""]}},
        "high_availability.preferred_hosts[0]",
        "invalid value '' for high_availability.preferred_hosts[0]; allowed: a non-empty name",
    ),
    Case(
        "ha-failback-window-not-hours",
        {"high_availability": {"failback_window": [22, 24]}},
        "high_availability.failback_window",
        "invalid value [22, 24] for high_availability.failback_window; allowed: [START, "
        "END] hours 0-23 that differ (e.g. [22, 6]), or null",
    ),
    Case(
        "ha-preferred-site-not-a-name",
        {"high_availability": {"preferred_site": "two words"}},
        "high_availability.preferred_site",
        "invalid value 'two words' for high_availability.preferred_site; allowed: 1-63 "
        "letters, digits, '.', '_', '-' (starting with a letter or digit), or \"\" for none",
    ),
    Case(
        "integration-service-not-bool",
        {"integration_services": {"heartbeat": "yes"}},
        "integration_services.heartbeat",
        iv("integration_services.heartbeat", "'yes'", "true or false"),
    ),
    Case(
        "unknown-nested",
        {"memory": {"startup_mb": 512, "dynamic": True}},
        "memory.dynamic",
        "unknown setting 'memory.dynamic'; allowed keys of memory: startup_mb",
        BadRequest,
    ),
    Case(
        "unknown-in-list-item",
        {"network_adapters": [nic(speed=100)]},
        "network_adapters[0].speed",
        "unknown setting 'network_adapters[0].speed'; allowed keys of network_adapters[0]: "
        "kind, switch, mac_mode, mac, vlan_id, trunk_vlans, native_vlan",
        BadRequest,
    ),
    Case(
        "unknown-scsi-kind",
        {
            "scsi": [
                {"controller": 0, "disks": [{"location": 0, "path": "/s", "kind": "hard_disk"}]}
            ]
        },
        "scsi[0].disks[0].kind",
        "unknown setting 'scsi[0].disks[0].kind'; allowed keys of scsi[0].disks[0]: "
        "location, path, format",
        BadRequest,
    ),
]
