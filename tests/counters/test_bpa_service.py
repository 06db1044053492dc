"""End to end: a real service on a set-up built to break rules; `viridian bpa --json`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.service.harness import Service, temp_folder
from viridian.cli.main import cli
from viridian.disks import new_dynamic, new_fixed


def _bpa(data_dir: Path, host: dict[str, int], disks: dict[str, tuple[str, str]]) -> dict[
        str, dict[str, str]]:
    """Run a service with ``host`` as host.json and one VM per disk; return findings by id."""
    data_dir.mkdir()
    (data_dir / "host.json").write_text(json.dumps(host))
    service = Service(data_dir)
    try:
        service.start()  # inside: a service that starts but never answers is stopped too
        with service.client() as api:
            for name, (path, notes) in disks.items():
                created = api.post("/vms", json={"name": name, "memory_mb": 64, "vhd": path,
                                                 "settings": {"notes": notes}})
                assert created.status_code == 201, created.text
        env = {"VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
        result = CliRunner().invoke(cli, ["bpa", "--json"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        human = CliRunner().invoke(cli, ["bpa"], env=env, catch_exceptions=False)
        assert "fired" in human.output and "why:" in human.output
    finally:
        service.stop()
    return {f["id"]: f for f in json.loads(result.output)["findings"]}


@pytest.fixture
def base() -> Iterator[Path]:
    """The disks and both services' data folders; removed once the test ended (each
    service is stopped by ``_bpa``), kept with ``VIRIDIAN_TEST_KEEP`` to read their logs."""
    with temp_folder("vir-bpa-") as folder:
        yield folder


def test_bpa_fires_on_a_broken_setup_and_stays_silent_on_a_sound_one(base: Path) -> None:
    new_dynamic(base / "prod.vhd", 64 * 2**20)
    new_dynamic(base / "lab.vhd", 64 * 2**20)
    new_fixed(base / "fixed.vhd", 16 * 2**20)
    broken = _bpa(base / "broken", {"host_reserve_mb": 64, "virtual_processor_ratio": 16},
                  {"prod": (str(base / "prod.vhd"), ""),
                   "lab": (str(base / "lab.vhd"), "bpa:test lab machine")})
    for rule in ("host-memory-reserve", "vp-lp-ratio", "dynamic-disks-on-production",
                 "hardware-virtualization"):
        assert broken[rule]["status"] == "fired", broken[rule]
    assert "configured reserve 64 MB" in broken["host-memory-reserve"]["measured"]
    assert "admission limit 16:1" in broken["vp-lp-ratio"]["measured"]
    assert "prod.vhd (vpc dynamic)" in broken["dynamic-disks-on-production"]["measured"]
    assert "lab.vhd" not in broken["dynamic-disks-on-production"]["measured"]
    assert broken["hardware-virtualization"]["measured"] == "accelerator tcg"
    assert broken["vm-on-management-adapter"]["status"] == "ok"  # switches work (root)
    assert "no VM is connected" in broken["vm-on-management-adapter"]["measured"]

    sound = _bpa(base / "sound", {"host_reserve_mb": 512, "virtual_processor_ratio": 8},
                 {"prod": (str(base / "fixed.vhd"), "")})
    for rule in ("host-memory-reserve", "vp-lp-ratio", "dynamic-disks-on-production",
                 "checkpoints-on-production"):
        assert sound[rule]["status"] == "ok", sound[rule]
