"""`vm set --name`, `nic --nic` on set and remove, `vm screenshot` into a missing folder,
and what each command imports (issue 12 latency, issue 13 #5 and friction)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tests.cli.cli_harness import Run
from tests.cli.fake_service import PNG, FakeService
from viridian.cli.lazy import LazyGroup
from viridian.cli.main import cli

HEAVY = ("httpx", "yaml", "viridian.disks", "viridian.planner", "viridian.service", "websockets")


def test_vm_set_name_renames_through_patch(fake: FakeService, run: Run) -> None:
    fake.add_vm("web")
    result = run("vm", "set", "web", "--name", "web2")
    assert result.exit_code == 0, result.output
    assert result.stdout == "web: changed name=web2\n"
    assert fake.requests_to("PATCH", "/vms/web")[0].body == {"name": "web2"}
    assert set(fake.vms) == {"web2"}


def _two_nics(fake: FakeService) -> None:
    vm = fake.add_vm("web")
    vm["settings"]["network_adapters"] = [
        {"mac": "00:15:5D:00:00:01"},
        {"mac": "00:15:5D:00:00:02"},
    ]


@pytest.mark.parametrize("flag", ["--nic", "--index"])
def test_nic_remove_takes_nic_and_the_old_index(fake: FakeService, run: Run, flag: str) -> None:
    _two_nics(fake)
    result = run("vm", "nic", "remove", "web", flag, "2")
    assert result.exit_code == 0, result.output
    assert result.stdout == "web: removed network adapter 2 (Off)\n"
    assert fake.vms["web"]["settings"]["network_adapters"] == [{"mac": "00:15:5D:00:00:01"}]


def test_nic_commands_document_nic_not_index() -> None:
    for name in ("set", "remove"):
        result = _help("vm", "nic", name)
        assert "--nic N" in result and "--index" not in result


def test_nic_without_a_number_when_several_names_the_option(fake: FakeService, run: Run) -> None:
    _two_nics(fake)
    result = run("vm", "nic", "remove", "web")
    assert result.exit_code == 2
    assert result.stderr == "error: VM 'web' has 2 network adapters; name one with --nic 1..2\n"
    assert fake.requests_to("DELETE", "/vms") == []


def test_nic_and_index_naming_different_adapters_is_a_usage_error(
    fake: FakeService, run: Run
) -> None:
    _two_nics(fake)
    result = run("vm", "nic", "remove", "web", "--nic", "1", "--index", "2")
    assert result.exit_code == 2
    assert "--nic 1 and --index 2 name different adapters" in result.stderr
    assert len(fake.vms["web"]["settings"]["network_adapters"]) == 2


def test_screenshot_into_a_missing_folder_is_a_clear_error(
    fake: FakeService, run: Run, tmp_path: Path
) -> None:
    fake.add_vm("web", "Running")
    target = tmp_path / "nonexistent" / "x.png"
    result = run("vm", "screenshot", "web", str(target))
    assert result.exit_code == 3
    assert result.stderr == (
        f"error: cannot save the screen to {target}: the folder {target.parent} does not "
        "exist; nothing was written\n"
    )
    assert fake.requests == []
    assert not target.parent.exists()


def test_screenshot_below_a_file_is_a_clear_error(
    fake: FakeService, run: Run, tmp_path: Path
) -> None:
    (tmp_path / "plain").write_text("x")
    result = run("vm", "screenshot", "web", str(tmp_path / "plain" / "x.png"))
    assert result.exit_code == 2
    assert f"{tmp_path / 'plain'} is not a folder; nothing was written" in result.stderr


def test_screenshot_write_failure_leaves_nothing(fake: FakeService, run: Run) -> None:
    fake.add_vm("web", "Running")
    target = Path("/proc/viridian-test.png")
    result = run("vm", "screenshot", "web", str(target))
    assert result.exit_code == 6
    assert result.stderr.startswith(f"error: cannot save the screen to {target}: ")
    assert result.stderr.endswith("; nothing was written\n")
    assert not target.exists()


def test_screenshot_saves_the_png(fake: FakeService, run: Run, tmp_path: Path) -> None:
    fake.add_vm("web", "Running")
    result = run("vm", "screenshot", "web", str(tmp_path / "x.png"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x.png").read_bytes() == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_screenshot_of_an_off_vm_writes_nothing(
    fake: FakeService, run: Run, tmp_path: Path
) -> None:
    fake.add_vm("web")
    result = run("vm", "screenshot", "web", str(tmp_path / "x.png"))
    assert result.exit_code == 4
    assert list(tmp_path.iterdir()) == []


def _help(*args: str) -> str:
    from tests.cli.cli_harness import invoke

    result = invoke([*args, "--help"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_size_option_states_the_rule_and_its_default() -> None:
    for command in (("vm", "new"), ("vm", "set")):
        text = " ".join(_help(*command).split())
        assert "(bare number = MB); default:" in text, command


@pytest.mark.parametrize("group", [cli, None])
def test_lazy_summaries_match_the_commands(group: LazyGroup | None) -> None:
    """`--help` shows stored summaries; they must say what the commands' docstrings say."""
    ctx = click.Context(cli)
    target = group or cli.get_command(ctx, "vm")
    assert isinstance(target, LazyGroup)
    for name, entry in target.lazy.items():
        command = target.get_command(click.Context(target), name)
        if command is None:  # module not written yet
            continue
        assert entry.summary == command.get_short_help_str(10_000), name


def _imported_by(*argv: str) -> list[str]:
    code = (
        "import sys\n"
        "from viridian.cli.main import cli\n"
        f"try:\n    cli({list(argv)!r}, prog_name='viridian')\n"
        "except SystemExit:\n    pass\n"
        f"heavy = {HEAVY!r}\n"
        "print(__import__('json').dumps(sorted(m for m in sys.modules if m.startswith(heavy))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "argv", [["--help"], ["--url", "http://127.0.0.1:9", "--token", "t", "vm", "list"]]
)
def test_commands_import_no_heavy_library(argv: list[str]) -> None:
    assert _imported_by(*argv) == []
