"""Smoke run of bench/bench_redfish.py (``--quick``): both columns and a ratio per row.
No timing is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_run_prints_both_sides_and_ratios() -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_redfish.py"), "--quick"],
                          capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for operation in ("GET a VM", "power cycle (on + off)"):
        line = next(li for li in done.stdout.splitlines() if li.startswith(operation))
        assert re.search(r"\d+\.\d+\s+\d+\.\d+\s+\d+\.\d+x$", line), line
