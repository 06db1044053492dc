"""Smoke test of the provisioning benchmark: `--quick --json` (one VM each side) runs end
to end and reports both times and the disk space per VM. No figure is asserted against a
target: the figures are the benchmark's output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.guest
def test_quick_run_reports_both_sides() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_provision.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=900, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = json.loads(done.stdout)["runs"]
    assert run["count"] == 1 and run["viridian_s"] > 0 and run["baseline_s"] > 0
    assert run["viridian_bytes_per_vm"] > 0 and run["baseline_bytes_per_vm"] > 0
