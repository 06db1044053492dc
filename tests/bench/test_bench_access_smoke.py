"""Smoke test of the access benchmark: `--quick --json` runs end to end (1,000 grants,
100 groups, a real service, local/pam/ldap logins with a real slapd). No figure is
asserted against a target (the machine is shared and loaded): the figures are the
benchmark's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_run_reports_decision_request_and_login_times() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_access.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=900, cwd=REPO, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert (report["grants"], report["groups"]) == (1000, 100)
    for key in ("decision_us", "policy_allows_us", "admin_token_ms", "user_token_ms"):
        assert report[key] > 0, report
    realms = {"local_ms", "ldap_ms"} | ({"pam_ms"} if os.geteuid() == 0 else set())
    assert set(report["login_ms"]) == realms
    assert all(v > 0 for v in report["login_ms"].values())
    assert set(report["ratio"]) == {"user_token / admin_token request", "decision / request"}
