"""The plans against the real kernel, in a throwaway network namespace per test (the
host's own interfaces are never touched): the mode this kernel supports runs end to end;
the other mode is skipped, saying why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from viridian.network.host import has_net_admin
from viridian.network.probe import probe_features

REPO = Path(__file__).resolve().parents[2]
FEATURES = probe_features()


def run_in_namespace(mode: str) -> dict[str, object]:
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.network.kernel_check", mode],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(not has_net_admin(), reason="needs CAP_NET_ADMIN (root)")
@pytest.mark.parametrize("mode", ["vlan_filtering", "bridge_per_vlan"])
def test_plans_converge_on_the_real_kernel(mode: str) -> None:
    if mode == "vlan_filtering" and not FEATURES.bridge_vlan_filtering:
        pytest.skip(f"this kernel has no bridge VLAN filtering ({'; '.join(FEATURES.errors)})")
    result = run_in_namespace(mode)
    assert result["again"] == []  # converged: a second plan has nothing to do
    assert result["again_after_vlan_change"] == []
    assert result["tap_kept"] is True  # the VLAN changed without re-creating the tap
    expected_master = "vsab121" if mode == "vlan_filtering" else "vsab121v20"
    assert result["tap_master"] == expected_master
    assert result["adapter_master"] == "vsab124"
    assert result["bridge_addresses"] == ["10.9.0.2/24"]
    assert result["default_dev"] == ["vsab124"]
    assert result["again_after_removal"] == []
    assert result["left"] == []
    assert result["adapter_addresses"] == ["10.9.0.2/24"]
    assert result["routes_back"] == [["10.8.0.0/16", "ethlab0"], ["default", "ethlab0"]]
