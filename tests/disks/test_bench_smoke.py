"""The disk benchmark runs end to end in its quick mode (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_disks.py"


def test_quick_benchmark_prints_every_operation(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = {line.split("  ")[0].strip(): line.split() for line in res.stdout.splitlines()}
    for op in ("raw -> dynamic", "raw -> fixed", "dynamic -> raw", "compact", "merge (25% child)"):
        assert op in rows, res.stdout
        assert float(rows[op][-1]) > 0  # ours/floor ratio printed
    assert list(tmp_path.iterdir()) == []  # work files cleaned up
