"""The suite's safety net (tests/conftest.py): a QEMU that a test run leaves behind is
named, killed and fails the run; QEMUs of other runs on the host are left alone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.qemu_processes import RUN_TAG, QemuProcess, kill

REPO = Path(__file__).resolve().parents[1]
IDLE_QEMU = ["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none", "-S"]

LEAKY_TEST = f"""
import subprocess

def test_forgets_its_qemu():
    subprocess.Popen({IDLE_QEMU!r}, stdin=subprocess.DEVNULL)
"""


def _gone(pid: int, limit: float = 30.0) -> bool:
    deadline = time.monotonic() + limit  # a bound for a loaded host, not a timing check
    while time.monotonic() < deadline:
        try:
            if ") Z " not in Path(f"/proc/{pid}/stat").read_text():
                time.sleep(0.05)
                continue
        except FileNotFoundError:
            pass
        return True
    return False


def test_a_leaked_qemu_is_reported_killed_and_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
    env = {k: v for k, v in os.environ.items() if k != RUN_TAG}  # a run of its own
    bystander = subprocess.Popen(IDLE_QEMU, stdin=subprocess.DEVNULL, env=env)
    try:
        inner = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.conftest",
             "--rootdir", str(tmp_path), "-q", str(tmp_path / "test_leaky.py")],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert bystander.poll() is None, "the safety net killed another run's QEMU"
    finally:
        kill([QemuProcess(bystander.pid, "bystander")])
    output = inner.stdout + inner.stderr
    assert inner.returncode == 1, output
    assert "1 passed" in output  # the test itself passed: the leak alone fails the run
    assert "1 QEMU process(es) started by this test run survived it (killed now)" in output
    leaked = re.search(r"pid (\d+): qemu-system-x86_64 -machine none", output)
    assert leaked, output
    assert _gone(int(leaked.group(1)))
