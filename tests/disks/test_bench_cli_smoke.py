"""The CLI part of the disk benchmark runs end to end in quick mode (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_disks.py"


def test_quick_cli_benchmark_prints_a_ratio_per_conversion(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--only", "cli", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    names = ["raw -> vhd", "vhd -> raw"]
    if any("vhdx on" in line for line in lines):
        names += ["raw -> vhdx", "vhdx -> raw"]
    for name in names:
        row = next((line for line in lines if line.startswith(f"cli 64 MiB {name} ")), None)
        assert row is not None, res.stdout
        ours, qemu, ratio = map(float, row.split()[-3:])
        assert ours > 0 and qemu > 0 and ratio > 0
    assert list(tmp_path.iterdir()) == []  # work files (and the bytecode cache) removed
