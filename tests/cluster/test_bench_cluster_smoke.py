"""Smoke test of the cluster benchmark: `--quick --json` runs host loops against a real
3-member etcd beside the bare keepalive peer and reports every figure (none asserted
against a goal: the machine is shared and loaded)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_run_reports_requests_cpu_the_peer_and_failover() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_cluster.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["hosts"] == 3 and report["vms_per_host"] == 50
    assert report["etcd_requests_per_s"] > 0
    assert report["peer_keepalive_cpu_ms_per_s"] >= 0 and report["keepalive_cpu_ratio"] >= 0
    assert report["simulated_failover_s"]["max_single_crash_ttl10"] > 0
