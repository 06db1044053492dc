"""The real CLI against the real service (in-process click runner, real HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.service.harness import Service
from viridian.cli.main import cli


@pytest.fixture
def run(service: Service):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, (args, result.exit_code, result.output)
        return result.output

    return invoke


def test_cli_drives_the_service(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("vm", "new", "cli-vm", "--memory", "96MB", "--processors", "1")
    shown = json.loads(run("vm", "show", "cli-vm", "--json"))
    for key in ("name", "id", "state", "enabled_state", "memory_mb", "processors", "uptime_s",
                "settings"):
        assert key in shown
    assert (shown["memory_mb"], shown["state"]) == (96, "Off")

    run("vm", "set", "cli-vm", "--memory", "128MB", "--weight", "200", "--reserve", "10",
        "--limit", "50", "--boot-order", "ide,cd,net,floppy", "--numlock", "on",
        "--auto-start", "always", "--auto-start-delay", "5", "--auto-stop", "shut-down",
        "--notes", "from the CLI")
    settings = json.loads(run("vm", "show", "cli-vm", "--json"))["settings"]
    assert settings["memory"]["startup_mb"] == 128
    assert settings["processor"] | {"count": 1} == {
        "count": 1, "reserve_pct": 10, "limit_pct": 50, "weight": 200,
        "compatibility_mode": False}
    assert settings["bios"] == {"num_lock": True, "startup_order": ["ide", "cd", "net", "floppy"]}
    assert settings["automatic_start"] == {"action": "always", "delay_s": 5}
    assert settings["automatic_stop"] == {"action": "shut_down"}
    assert settings["notes"] == "from the CLI"

    assert "Running" in run("vm", "start", "cli-vm")
    listed = json.loads(run("vm", "list", "--json"))
    assert [(v["name"], v["state"]) for v in listed["vms"]] == [("cli-vm", "Running")]
    assert "cli-vm" in run("vm", "list")
    assert "Paused" in run("vm", "pause", "cli-vm")
    assert "Running" in run("vm", "resume", "cli-vm")
    human = run("vm", "show", "cli-vm")
    assert "Running" in human and "128" in human
    host = json.loads(run("host", "show", "--json"))
    assert host["vms_running"] == 1 and host["memory_assigned_mb"] == 128
    assert "Off" in run("vm", "stop", "cli-vm")
    run("vm", "remove", "cli-vm", "--delete-files")
    assert json.loads(run("vm", "list", "--json"))["vms"] == []


def test_cli_errors_are_clear_with_exit_codes(run) -> None:  # type: ignore[no-untyped-def]
    assert "no VM named 'ghost'" in run("vm", "show", "ghost", code=3)
    run("vm", "new", "dup", "--memory", "64MB")
    assert "already exists" in run("vm", "new", "dup", code=4)
    out = run("vm", "pause", "dup", code=4)
    assert "it is Off" in out and "start" in out
    out = run("vm", "set", "dup", "--memory", "4MB", code=2)
    assert "memory" in out and "8" in out
    assert run("vm", "start", "ghost", code=3)
