"""Smoke test of the migration benchmark: ``--quick`` runs end to end (two services, the
bare QEMU peer) and prints its table and goal lines.

No timing is asserted: the figures are the benchmark's output, not a pass/fail criterion.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MEASURES = ("quick downtime", "live idle total", "live idle downtime", "live load downtime",
            "live idle guest paused")


@pytest.mark.guest
def test_quick_run_prints_every_measure_beside_bare_qemu() -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_migration.py"),
                           "--quick"], capture_output=True, text=True, timeout=600, cwd=REPO,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line[:28].strip(): line[28:].split() for line in done.stdout.splitlines()}
    assert rows["measure"] == ["viridian", "ms", "bare", "QEMU", "ms", "ratio"], done.stdout
    for measure in MEASURES:
        assert float(rows[measure][0]) >= 0, done.stdout
    assert float(rows["live idle downtime"][1]) >= 0  # the bare peer measured too
    assert "quick downtime" in done.stdout and "(goal <= 1000)" in done.stdout
