"""Smoke test of the checkpoint benchmark: `--quick` runs end to end and prints its table.

No timing is asserted: the figures are the benchmark's output, not a pass/fail criterion.
What is checked: every operation has a viridian figure, and when libvirt was measured every
row has either a figure and a ratio or libvirt's own refusal ("n/a" with a footnote).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OPERATIONS = (
    "take, Off (disks only)",
    "take, Running (+ memory)",
    "apply a Running checkpoint",
    "delete, Running, mid-chain",
    "delete, Off, mid-chain",
    "apply an Off checkpoint",
)


@pytest.mark.guest
def test_quick_run_prints_figures_and_ratios() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_checkpoints.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("operation "))
    assert re.split(r"\s{2,}", lines[header]) == [
        "operation",
        "viridian s",
        "libvirt s",
        "viridian/libvirt",
        "libvirt counterpart",
    ]
    rows = []
    for line in lines[header + 1 :]:  # the table ends at the first line that is not a row
        cells = re.split(r"\s{2,}", line)
        if len(cells) != 5:
            break
        rows.append(cells)
    assert {row[0] for row in rows} == set(OPERATIONS), done.stdout
    libvirt_measured = "libvirt: not measured" not in done.stdout
    footnotes = [line for line in lines if re.match(r"\[\d+\] n/a \(libvirt: .+\)$", line)]
    for operation, viridian, libvirt, ratio, _counterpart in rows:
        assert float(viridian) > 0, (operation, viridian)
        if not libvirt_measured:
            assert (libvirt, ratio) == ("-", "-")
        elif libvirt.startswith("n/a"):  # libvirt refused: its error is a footnote
            number = int(libvirt.removeprefix("n/a [").removesuffix("]"))
            assert footnotes[number - 1].startswith(f"[{number}] n/a (libvirt: ")
            assert ratio == "-"
        else:
            assert float(libvirt) > 0 and ratio.endswith("x") and float(ratio[:-1]) > 0, ratio
