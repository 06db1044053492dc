"""Smoke test of the lifecycle benchmark: `--quick` runs end to end and prints its table.

No timing is asserted: the figures are the benchmark's output, not a pass/fail criterion.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OPERATIONS = ("define", "start", "pause", "resume", "save", "restore", "turn_off")


@pytest.mark.guest
def test_quick_run_prints_a_row_per_operation() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_lifecycle.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "bare QEMU ms" in lines["operation"] and "viridian ms" in lines["operation"]
    for operation in OPERATIONS:
        assert operation in lines, done.stdout
        bare, viridian = lines[operation].split()[1:3]  # both stacks measured: numbers
        assert float(bare) >= 0 and float(viridian) >= 0, lines[operation]
