"""Smoke test of the CLI latency benchmark: `--quick --json` runs end to end.

No figure is asserted against a target (the machine is shared and loaded): the figures
are the benchmark's output. No guest is started: the VMs are only defined.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_run_reports_medians_and_ratios() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_cli.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=600, cwd=REPO, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert (report["runs"], report["vms"]) == (3, 2)
    assert set(report["median_ms"]) == {
        "viridian vm list --json", "peer GET /vms", "viridian vm show bench-cli-1 --json",
        "peer GET /vms/bench-cli-1", "viridian --help",
    }
    assert all(value > 0 for value in report["median_ms"].values()), report
    assert set(report["ratio"]) == {
        "viridian vm list --json", "viridian vm show bench-cli-1 --json", "viridian --help",
    }
    assert all(value > 0 for value in report["ratio"].values()), report
