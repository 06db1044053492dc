"""The host setting ``storage_daemon`` (docs/architecture.md, "The storage daemon"):
``vhd`` is the default, so a VM with a VHD disk offers Save; ``off`` is the opt-out, and
then such a VM says why it cannot be saved and how to change that. No guest is booted:
what a VM can do is known from its settings and the host while it is Off.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.service.harness import running_service
from viridian.disks import new_dynamic
from viridian.errors import InvalidSetting
from viridian.service.server import load_host_settings

MB = 1024 * 1024


def test_the_daemon_is_on_by_default_and_a_bad_value_names_the_choices(tmp_path: Path) -> None:
    assert load_host_settings(tmp_path)["storage_daemon"] == "vhd"
    (tmp_path / "host.json").write_text(json.dumps({"storage_daemon": "on"}))
    with pytest.raises(InvalidSetting) as refused:
        load_host_settings(tmp_path)
    assert "storage_daemon" in str(refused.value)
    assert "vhd, off" in str(refused.value)


@pytest.mark.parametrize("host_settings", [None, {"storage_daemon": "off"}],
                         ids=["default", "opt-out"])
def test_a_vhd_vm_offers_save_unless_the_host_opts_out(
        host_settings: dict[str, str] | None, tmp_path: Path) -> None:
    vhd = tmp_path / "d.vhd"
    new_dynamic(vhd, 8 * MB)
    with running_service(host_settings=host_settings) as service, service.client() as api:
        created = api.post("/vms", json={"name": "v", "memory_mb": 128, "vhd": str(vhd)})
        assert created.status_code == 201, created.text
        unavailable = api.get("/vms/v").json()["unavailable"]
        if host_settings is None:
            assert unavailable == {}
            return
        why = unavailable["save"]
        assert why.startswith("QEMU cannot save the memory of a VM with VHD/VHDX disks "
                              "(vpc driver)"), why
        assert "it has no storage daemon (host.json \"storage_daemon\": \"off\"" in why
        assert "\"storage_daemon\": \"vhd\" (the default) its next start gets one" in why
