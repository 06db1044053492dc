"""The pure mapping (viridian.redfish): every VM state has a power state, a boot override
reorders only what QEMU sees, $metadata references only schema files and namespaces that
exist in DSP8010, and errors carry Base registry messages."""

from __future__ import annotations

import re

import pytest

from tests.redfish.schemas import SCHEMAS
from viridian.model import VMSettings
from viridian.model.choices import BootDevice
from viridian.model.states import VMState
from viridian.redfish import boot, power
from viridian.redfish.boot import BootOverride
from viridian.redfish.messages import RedfishError, message
from viridian.redfish.odata import metadata_xml
from viridian.redfish.systems import SystemView, computer_system, reset_action_info

NO_OVERRIDE = BootOverride()


def _view(state: VMState = VMState.OFF) -> SystemView:
    return SystemView("id-1", "vm1", state, VMSettings(name="vm1"), NO_OVERRIDE, "2026")


@pytest.mark.parametrize("state", list(VMState))
def test_every_state_has_a_power_state_and_status(state: VMState) -> None:
    system = computer_system(_view(state))
    assert system["PowerState"] in ("On", "Off", "Paused", "PoweringOn", "PoweringOff")
    assert system["Status"]["State"]
    assert system["SystemType"] == "Virtual"


def test_saved_is_off_but_standby_offline() -> None:
    system = computer_system(_view(VMState.SAVED))
    assert (system["PowerState"], system["Status"]["State"]) == ("Off", "StandbyOffline")


def test_reset_action_info_lists_what_a_vm_supports() -> None:
    info = reset_action_info(_view())
    assert info["Parameters"][0]["AllowableValues"] == [
        "On", "ForceOff", "GracefulShutdown", "ForceRestart", "Pause", "Resume", "Suspend"]
    assert power.RESET_TYPES["Suspend"].value == "save"


def test_boot_override_puts_the_target_first_and_keeps_the_rest() -> None:
    settings = VMSettings(name="vm1")
    changed = boot.apply(settings, BootOverride("Once", "Floppy"))
    assert changed.bios.startup_order[0] is BootDevice.FLOPPY
    assert sorted(changed.bios.startup_order) == sorted(settings.bios.startup_order)
    assert boot.apply(settings, BootOverride("Disabled", "Cd")) is settings


def test_metadata_references_existing_schemas_and_namespaces() -> None:
    xml = metadata_xml()
    refs = re.findall(r'Uri="http://redfish.dmtf.org/schemas/v1/(\w+\.xml)">(.*?)</edmx',
                      xml, re.S)
    assert len(refs) > 30
    for name, body in refs:
        text = (SCHEMAS / name).read_text()
        for namespace in re.findall(r'Namespace="([\w.]+)"', body):
            assert f'Namespace="{namespace}"' in text, (name, namespace)


def test_errors_carry_base_registry_messages() -> None:
    filled = message("ResourceNotFound", "ComputerSystem", "x")
    assert filled["Message"] == "The requested resource of type ComputerSystem named 'x' " \
                                "was not found."
    body = RedfishError(400, "PropertyValueNotInList", "Bad", "ResetType",
                        detail="allowed: On").body()["error"]
    assert body["code"] == "Base.1.22.PropertyValueNotInList"
    assert body["message"] == "allowed: On"
    assert body["@Message.ExtendedInfo"][0]["MessageArgs"] == ["Bad", "ResetType"]
