"""Smoke test of the virtual switch benchmark: `--quick --json` runs end to end.

No figure is asserted against a target: the figures are the benchmark's output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from viridian.network.host import has_net_admin

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.guest
@pytest.mark.skipif(not has_net_admin(), reason="virtual switches need CAP_NET_ADMIN")
def test_quick_run_reports_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_network.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=900, cwd=REPO, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    for kind in ("synthetic", "legacy"):
        for where in ("guest_guest", "guest_host"):
            assert report[f"{where}_{kind}_mbit_s"] > 0, report
            assert report[f"{where}_{kind}_ping_ms"] > 0, report
    for key in ("ratio_guest_guest_synthetic_to_legacy_throughput",
                "ratio_switch_to_plain_bridge_throughput",
                "ratio_control_plane_viridian_to_hand"):
        assert report[key] > 0, report
