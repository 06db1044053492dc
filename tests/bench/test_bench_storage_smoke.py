"""Smoke test of the storage benchmark: ``--quick`` runs end to end and prints its table.

No timing is asserted: the figures are the benchmark's output, not a pass/fail criterion.
What is checked: every disk kind has every operation measured on both sides, with a
positive figure and a ratio; the socket floor is measured and turned into the bound of
each one-request-in-flight sequential row.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DISKS = ("ide raw", "ide qcow2", "ide vhd vs raw direct", "scsi raw",
         "scsi vhd vs raw direct")
OPERATIONS = ("seq write MB/s", "seq read MB/s", "seq write x4 MB/s", "seq read x4 MB/s",
              "buffered write MB/s", "buffered read MB/s", "4k rand write IOPS",
              "4k rand read IOPS")


@pytest.mark.guest
def test_quick_run_prints_figures_and_ratios() -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_storage.py"), "--quick"],
                          capture_output=True, text=True, timeout=900, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    measured, floor = done.stdout.split("\n\n")
    lines = measured.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["disk", "operation", "daemon", "direct",
                                                     "daemon/direct"]
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]
    assert {(row[0], row[1]) for row in rows} == {(d, o) for d in DISKS for o in OPERATIONS}
    for _disk, _op, daemon, direct, ratio in rows:
        assert float(daemon) > 0 and float(direct) > 0
        assert float(ratio) == pytest.approx(float(daemon) / float(direct), abs=0.02)
    # the socket floor, and per one-request-in-flight sequential row the ratio it allows
    head, bounds = floor.splitlines()[:2], floor.splitlines()[2:]
    floor_us = re.fullmatch(r"socket floor: (\d+) us per MiB \(.*\)", head[0])
    assert floor_us and int(floor_us.group(1)) > 0, head
    assert head[1].startswith("best daemon/direct a socket transport allows")
    direct = {(row[0], row[1]): float(row[3]) for row in rows}
    seen = {}
    for line in bounds:
        disk, op, bound = re.split(r"\s{2,}", line.strip())
        seen[(disk, op)] = float(bound)
        per_mib = 1e6 / direct[(disk, op)]
        assert float(bound) == pytest.approx(per_mib / (per_mib + int(floor_us.group(1))),
                                             abs=0.01)
    assert set(seen) == {(d, o) for d in DISKS for o in OPERATIONS[:2]}
