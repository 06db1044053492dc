"""``vm new``, ``vm set`` and ``vm remove``: requests sent, local syntax checks, service errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.cli_harness import Run
from tests.cli.fake_service import FakeService
from viridian.cli.vm import settings_patch


def test_vm_new_sends_sizes_in_mb_and_absolute_paths(
    fake: FakeService, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "boot.iso").write_bytes(b"iso")
    (tmp_path / "disk.vhd").write_bytes(b"vhd")
    monkeypatch.chdir(tmp_path)
    result = run(
        "vm",
        "new",
        "web",
        "--memory",
        "1GB",
        "--processors",
        "2",
        "--dvd",
        "boot.iso",
        "--vhd",
        "./disk.vhd",
    )
    assert result.exit_code == 0, result.output
    [request] = fake.requests_to("POST", "/vms")
    assert request.body == {
        "name": "web",
        "memory_mb": 1024,
        "processors": 2,
        "dvd": str(tmp_path / "boot.iso"),
        "vhd": str(tmp_path / "disk.vhd"),
    }
    vm = fake.vms["web"]
    assert result.stdout == f"created web: Off, 1024 MB, 2 processor(s), id {vm['id']}\n"


def test_vm_new_sends_only_the_given_options(fake: FakeService, run: Run) -> None:
    result = run("vm", "new", "web")
    assert result.exit_code == 0
    assert fake.requests_to("POST", "/vms")[0].body == {"name": "web"}


def test_vm_new_json_is_the_created_vm(fake: FakeService, run: Run) -> None:
    result = run("vm", "new", "web", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == fake.vms["web"]


def test_vm_new_duplicate_name_exits_4(fake: FakeService, run: Run) -> None:
    fake.add_vm("web")
    result = run("vm", "new", "web")
    assert result.exit_code == 4
    assert result.stderr == "error: a VM named 'web' already exists; nothing was changed\n"


def test_vm_new_missing_file_is_reported_by_the_service(
    fake: FakeService, run: Run, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.iso"
    result = run("vm", "new", "web", "--dvd", str(missing))
    assert result.exit_code == 3
    assert f"dvd file {missing} does not exist" in result.stderr
    assert "web" not in fake.vms


@pytest.mark.parametrize(
    ("text", "megabytes"),
    [
        ("512MB", 512),
        ("1GB", 1024),
        ("2048", 2048),
        ("1.5gb", 1536),
        ("256M", 256),
        ("2GiB", 2048),
        (" 64 mb ", 64),
    ],
)
def test_memory_sizes_are_converted_to_mb(
    fake: FakeService, run: Run, text: str, megabytes: int
) -> None:
    fake.add_vm("web")
    result = run("vm", "set", "web", "--memory", text)
    assert result.exit_code == 0, result.output
    assert fake.requests_to("PATCH", "/vms/web")[0].body == {"memory": {"startup_mb": megabytes}}


@pytest.mark.parametrize("text", ["12XB", "1.0001GB", "-5", "", "GB", "1e3", "0x10"])
def test_malformed_sizes_exit_2_naming_the_accepted_forms(
    fake: FakeService, run: Run, text: str
) -> None:
    result = run("vm", "new", "web", "--memory", text)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: Invalid value for '--memory': {text!r} is not a")
    assert "use a number with a unit B, KB, MB, GB or TB" in result.stderr  # the one size rule
    assert "a bare number means MB" in result.stderr
    assert "Try 'viridian vm new --help' for help." in result.stderr
    assert fake.requests == []


def test_vm_set_builds_one_partial_settings_dict(fake: FakeService, run: Run) -> None:
    fake.add_vm("web")
    result = run(
        "vm",
        "set",
        "web",
        "--memory",
        "2GB",
        "--processors",
        "2",
        "--reserve",
        "10",
        "--limit",
        "90",
        "--weight",
        "200",
        "--boot-order",
        "IDE, cd",
        "--numlock",
        "off",
        "--auto-start",
        "if-running",
        "--auto-start-delay",
        "30",
        "--auto-stop",
        "turn-off",
        "--notes",
        "front end",
    )
    assert result.exit_code == 0, result.output
    [request] = fake.requests_to("PATCH", "/vms/web")
    assert request.body == {
        "memory": {"startup_mb": 2048},
        "processor": {"count": 2, "reserve_pct": 10, "limit_pct": 90, "weight": 200},
        "bios": {"startup_order": ["ide", "cd"], "num_lock": False},
        "automatic_start": {"action": "if_running", "delay_s": 30},
        "automatic_stop": {"action": "turn_off"},
        "notes": "front end",
    }
    assert result.stdout == (
        "web: changed memory.startup_mb=2048, processor.count=2, processor.reserve_pct=10, "
        "processor.limit_pct=90, processor.weight=200, bios.startup_order=ide,cd, "
        "bios.num_lock=False, automatic_start.action=if_running, automatic_start.delay_s=30, "
        "automatic_stop.action=turn_off, notes=front end\n"
    )


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--auto-start", "sometimes", "'nothing', 'if-running', 'always'"),
        ("--auto-stop", "hibernate", "'save', 'turn-off', 'shut-down'"),
        ("--numlock", "yes", "'on', 'off'"),
        ("--boot-order", "cd,usb", "cd, ide, net, floppy"),
        ("--processors", "two", "integer"),
    ],
)
def test_bad_option_values_exit_2_listing_the_allowed_ones(
    fake: FakeService, run: Run, option: str, value: str, allowed: str
) -> None:
    fake.add_vm("web")
    result = run("vm", "set", "web", option, value)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: Invalid value for '{option}': ")
    assert allowed in result.stderr
    assert fake.requests == []


def test_vm_set_without_options_exits_2(fake: FakeService, run: Run) -> None:
    fake.add_vm("web")
    result = run("vm", "set", "web")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: nothing to change; give at least one of --memory, ")
    assert fake.requests == []


def test_vm_set_out_of_range_is_the_services_invalid_setting(fake: FakeService, run: Run) -> None:
    fake.add_vm("web")
    result = run("vm", "set", "web", "--memory", "4MB")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: invalid value 4 for memory.startup_mb; allowed: 8 to 65536 MB\n"
    )
    assert fake.vms["web"]["memory_mb"] == 512


def test_settings_patch_leaves_out_options_not_given() -> None:
    assert settings_patch({"memory": None, "weight": 5, "numlock": None, "notes": ""}) == {
        "processor": {"weight": 5},
        "notes": "",
    }


@pytest.mark.parametrize(("flag", "deleted"), [([], "kept"), (["--delete-files"], "deleted")])
def test_vm_remove(fake: FakeService, run: Run, flag: list[str], deleted: str) -> None:
    fake.add_vm("web")
    result = run("vm", "remove", "web", *flag)
    assert result.exit_code == 0
    assert result.stdout == f"removed web; its files were {deleted}\n"
    [request] = fake.requests_to("DELETE", "/vms/web")
    assert request.query == {"delete_files": ["true" if flag else "false"]}
    assert "web" not in fake.vms


def test_vm_remove_of_a_running_vm_is_a_conflict(fake: FakeService, run: Run) -> None:
    fake.add_vm("web", "Running")
    result = run("vm", "remove", "web")
    assert result.exit_code == 4
    assert result.stderr == "error: VM 'web' is Running; turn it off first\n"
