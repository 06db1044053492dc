"""Smoke test of the backup benchmark: ``--quick --json`` runs end to end (live full and
incremental backup, peers, restore to a booted VM) and reports every figure. No timing is
asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.guest
def test_quick_run_reports_every_figure() -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_backup.py"), "--quick",
                           "--json"], capture_output=True, text=True, timeout=900, cwd=REPO,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    for key in ("full_s", "incremental_s", "convert_s", "cp_s", "restore_boot_s"):
        assert result[key] > 0, (key, result)
    assert result["incremental_written_mib"] < result["full_written_mib"], result
