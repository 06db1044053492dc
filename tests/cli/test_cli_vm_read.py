"""``vm list`` and ``vm show``: human views, --json as the API object, unknown VMs."""

from __future__ import annotations

import json

from tests.cli.cli_harness import Run
from tests.cli.fake_service import FakeService


def test_vm_list_shows_a_table_of_every_vm(fake: FakeService, run: Run) -> None:
    fake.add_vm("web", "Running", memory={"startup_mb": 1024})
    fake.vms["web"].update(memory_mb=1024, processors=2, status="resumed by host")
    fake.add_vm("db")
    result = run("vm", "list")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Name  State    CPUs  Memory (MB)  Uptime   Status",
        "web   Running  2     1024         1:02:03  resumed by host",
        "db    Off      1     512          -        -",
    ]


def test_vm_list_without_vms_says_so(run: Run) -> None:
    result = run("vm", "list")
    assert result.exit_code == 0
    assert result.stdout == "no virtual machines\n"


def test_vm_list_json_is_the_api_object(fake: FakeService, run: Run) -> None:
    fake.add_vm("web", "Running")
    result = run("vm", "list", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"vms": [fake.vms["web"]]}


def test_vm_show_json_is_the_api_object(fake: FakeService, run: Run) -> None:
    vm = fake.add_vm("web", "Paused", notes="front end")
    result = run("vm", "show", "web", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == vm


def test_vm_show_groups_every_setting_like_hyper_v(fake: FakeService, run: Run) -> None:
    vm = fake.add_vm(
        "web",
        "Running",
        notes="front end",
        ide=[
            {
                "controller": 0,
                "location": 0,
                "kind": "hard_disk",
                "path": "/d/web.vhd",
                "format": "vpc",
            },
            {"controller": 1, "location": 0, "kind": "dvd", "path": None, "format": None},
        ],
        scsi=[
            {"controller": 0, "disks": [{"location": 3, "path": "/d/data.vhdx", "format": "vhdx"}]}
        ],
        network_adapters=[
            {
                "kind": "legacy",
                "switch": None,
                "mac_mode": "static",
                "mac": "00:15:5d:01:02:03",
                "vlan_id": 7,
            }
        ],
        com2={"kind": "pipe", "path": "/run/viridian/com2"},
        floppy={"path": "/d/boot.vfd"},
        automatic_start={"action": "always", "delay_s": 30},
        automatic_stop={"action": "shut_down"},
    )
    result = run("vm", "show", "web")
    assert result.exit_code == 0
    text = result.stdout
    expected_lines = [
        f"ID:          {vm['id']}",
        "State:       Running (enabled_state 2)",
        "Uptime:      1:02:03",
        "Notes:       front end",
        "  Startup order: cd,ide,net,floppy",
        "  Startup RAM (MB): 512",
        "  Relative weight:    100",
        "  Location 0: Hard disk, /d/web.vhd (vpc)",
        "  Location 0: DVD drive, empty",
        "  Location 3: /d/data.vhdx (vhdx)",
        "  Type:         Legacy (emulated tulip)",
        "  Switch:       not connected",
        "  MAC address:  static 00:15:5d:01:02:03",
        "  VLAN ID:      7",
        '  Network boot: iPXE where the startup order says "net" (DHCP, then the boot file '
        "the DHCP server names; if nothing boots, the next device)",
        "  Attachment: pipe /run/viridian/com2",
        "  Virtual floppy: /d/boot.vfd",
        "  Action:    always (always start this virtual machine automatically)",
        "  Delay (s): 30",
        "  Action: shut-down (shut down the guest operating system)",
    ]
    for line in expected_lines:
        assert line in text.splitlines(), line
    sections = [
        line for line in text.splitlines() if line and not line.startswith(" ") and ":" not in line
    ]
    assert sections == [
        "BIOS",
        "Memory",
        "Processor",
        "IDE Controller 0",
        "IDE Controller 1",
        "SCSI Controller 0",
        "Network Adapter 1",
        "COM 1",
        "COM 2",
        "Diskette Drive",
        "Automatic Start Action",
        "Automatic Stop Action",
    ]


def test_vm_show_accepts_the_id(fake: FakeService, run: Run) -> None:
    vm = fake.add_vm("web")
    result = run("vm", "show", vm["id"])
    assert result.exit_code == 0
    assert result.stdout.startswith("Name:        web\n")


def test_vm_names_are_sent_as_one_path_segment(fake: FakeService, run: Run) -> None:
    fake.add_vm("a/b c")
    result = run("vm", "show", "a/b c", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["name"] == "a/b c"


def test_unknown_vm_exits_3_with_the_service_message(run: Run) -> None:
    result = run("vm", "show", "ghost")
    assert result.exit_code == 3
    assert result.stderr == "error: no VM named or with id 'ghost'\n"
    assert result.stdout == ""
