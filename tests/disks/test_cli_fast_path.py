"""The console script's fast path for ``viridian disk convert`` (viridian.cli.disk_plain):
the plain shape runs without importing click and writes the same image and line; every
other command line — help, bad options, refusals — prints exactly what the click command
prints, with the same exit code; a running local service sends it to the click command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from viridian.disks import new_dynamic, open_disk

MB = 1024 * 1024
SCRIPT = Path(sys.executable).with_name("viridian")
CLICK = [sys.executable, "-m", "viridian.cli.main"]


def run(argv: list[str], data_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIRIDIAN_DATA_DIR": str(data_dir), "PYTHONPROFILEIMPORTTIME": "1"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL, check=False)


def imported(stderr: str) -> set[str]:
    """The modules a run imported (its -X importtime lines)."""
    return {line.split("|")[-1].strip() for line in stderr.splitlines()
            if line.startswith("import time:")}


def imported_click(stderr: str) -> bool:
    return "click" in imported(stderr)


# what the plain path must not load: the CLI framework, and modules only other disk
# commands, foreign formats, errors or the service need (docs/architecture.md, "CLI latency")
NOT_ON_THE_PLAIN_PATH = {"click", "json", "subprocess", "decimal", "shutil", "typing",
                         "viridian.disks.foreign_convert", "viridian.cli.credentials"}


def user_stderr(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if not line.startswith("import time:"))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src.vhd"
    new_dynamic(path, 8 * MB)
    with open_disk(path, writable=True) as disk:
        disk.write(MB, b"\x5a" * 4096)
    return path


def test_plain_convert_runs_without_click_and_writes_the_image(tmp_path: Path, src: Path) -> None:
    result = run([str(SCRIPT), "disk", "convert", "src.vhd", "out.vhdx", "--type=dynamic"],
                 tmp_path / "data", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "converted src.vhd to dynamic out.vhdx\n"
    assert not imported(result.stderr) & NOT_ON_THE_PLAIN_PATH
    with open_disk(tmp_path / "out.vhdx") as disk:
        assert disk.read(MB, 4096) == b"\x5a" * 4096


@pytest.mark.parametrize("args", [
    ["src.vhd", "out.vhdx", "--help"],
    ["src.vhd", "out.qcow2"],  # a dynamic VHD must be named *.vhd
    ["src.vhd", "src.vhd"],  # exists
    ["missing.vhd", "out.vhd"],
    ["src.vhd", "out.vhd", "--type", "bogus"],
    ["src.vhd", "out.raw", "--type"],
    ["src.vhd"],
])
def test_every_other_command_line_is_the_click_command_s(
        tmp_path: Path, src: Path, args: list[str]) -> None:
    fast = run([str(SCRIPT), "disk", "convert", *args], tmp_path / "data", tmp_path)
    click = run([*CLICK, "disk", "convert", *args], tmp_path / "data", tmp_path)
    assert (fast.returncode, fast.stdout, user_stderr(fast.stderr)) == \
        (click.returncode, click.stdout, user_stderr(click.stderr))
    assert fast.returncode != 0 or "--help" in args
    assert not list(tmp_path.glob("out*"))  # nothing was created


def test_a_running_local_service_gets_the_click_command(tmp_path: Path, src: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()  # a live pid (ours) records a service that does not answer: click asks it
    (data / "service.json").write_text(json.dumps({"host": "127.0.0.1", "port": 9,
                                                   "pid": os.getpid()}))
    result = run([str(SCRIPT), "disk", "convert", "src.vhd", "out.vhd"], data, tmp_path)
    assert imported_click(result.stderr)
    assert result.returncode != 0 and not (tmp_path / "out.vhd").exists()
