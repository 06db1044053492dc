"""Issue 13 #10: the "checkpoints on production VMs" rule fires for a VM with checkpoints
(it runs on their overlays, which its settings do not name) and stays silent for a lab VM."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.service.harness import running_service, wait_job
from viridian.bpa import DiskFact, Facts, VMFact
from viridian.bpa.facts import CounterFact, HostFact
from viridian.bpa.rules import RULES

RAW = DiskFact("/vms/a.raw", "raw", "raw", "sda")
HOST = HostFact(8192, 4096, 512, 4, 8, "kvm")


def _rule(vms: tuple[VMFact, ...]) -> dict[str, str]:
    rule = next(r for r in RULES if r.id == "checkpoints-on-production")
    finding = rule(Facts(HOST, vms, CounterFact(0, 0)))
    return {"status": finding.status, "measured": finding.measured}


def test_rule_fires_for_a_production_vm_with_checkpoints() -> None:
    fired = _rule((VMFact("web1", True, 512, 1, True, (RAW,), checkpoints=2),))
    assert fired == {"status": "fired", "measured": "web1: 2 checkpoints"}
    lab = _rule((VMFact("lab", True, 512, 1, False, (RAW,), checkpoints=2),))
    assert lab["status"] == "ok"


def _checkpoint(api: httpx.Client, vm: str) -> None:
    response = api.post(f"/vms/{vm}/checkpoints", json={"name": "before-update"})
    assert response.status_code == 202, response.text
    assert wait_job(api, response.json())["state"] == "completed"


def test_service_reports_a_vm_on_checkpoint_overlays(tmp_path: Path) -> None:
    with running_service() as service, service.client() as api:
        for name, notes in (("prod", ""), ("lab", "bpa:test")):
            disk = tmp_path / f"{name}.raw"
            disk.write_bytes(b"\0" * 2**20)
            created = api.post("/vms", json={"name": name, "memory_mb": 64, "vhd": str(disk),
                                             "settings": {"notes": notes}})
            assert created.status_code == 201, created.text
        before = {f["id"]: f for f in api.get("/bpa").json()["findings"]}
        assert before["checkpoints-on-production"]["status"] == "ok"
        _checkpoint(api, "prod")
        _checkpoint(api, "lab")
        after = {f["id"]: f for f in api.get("/bpa").json()["findings"]}
    finding = after["checkpoints-on-production"]
    assert finding["status"] == "fired", finding
    assert "prod: 1 checkpoint" in finding["measured"]
    assert "(qcow2 differencing)" in finding["measured"]  # the overlay it now writes into
    assert "lab" not in finding["measured"]
