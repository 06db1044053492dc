"""One ``ComputerSystem`` per VM (``SystemType: Virtual``) and the ``ActionInfo`` of its
``Reset`` (ComputerSystem v1_27_0, ActionInfo v1_5_0)."""

from __future__ import annotations

from dataclasses import dataclass

from viridian.model import VMSettings
from viridian.model.states import VMState
from viridian.redfish import REDFISH_ROOT
from viridian.redfish.boot import ENABLED, TARGET_NAMES, BootOverride
from viridian.redfish.odata import Resource, link, resource
from viridian.redfish.power import RESET_TYPES, power_state, status

SYSTEMS = f"{REDFISH_ROOT}/Systems"
MANAGER_ID = "viridian"
CHASSIS_ID = "Host"
MANAGER_URI = f"{REDFISH_ROOT}/Managers/{MANAGER_ID}"
CHASSIS_URI = f"{REDFISH_ROOT}/Chassis/{CHASSIS_ID}"


@dataclass(frozen=True)
class SystemView:
    """What the mapping needs of one VM: its identity, state, settings and the boot
    override the Redfish capability keeps for it."""

    id: str
    name: str
    state: VMState
    settings: VMSettings
    boot: BootOverride
    created_at: str

    @property
    def uri(self) -> str:
        return f"{SYSTEMS}/{self.id}"


def computer_system(vm: SystemView) -> Resource:
    """The ``ComputerSystem`` of ``vm``."""
    s, uri = vm.settings, vm.uri
    return resource(
        "ComputerSystem", uri, vm.id, vm.name,
        Description=s.notes or f"viridian VM {vm.name}",
        SystemType="Virtual", UUID=vm.id, Manufacturer="viridian",
        Model="Virtual Machine (generation 1)", PowerState=power_state(vm.state),
        Status=status(vm.state),
        ProcessorSummary={"Count": s.processor.count,
                          "LogicalProcessorCount": s.processor.count},
        MemorySummary={"TotalSystemMemoryGiB": round(s.memory.startup_mb / 1024, 3)},
        Boot=boot(vm),
        Processors=link(f"{uri}/Processors"), Memory=link(f"{uri}/Memory"),
        EthernetInterfaces=link(f"{uri}/EthernetInterfaces"),
        Storage=link(f"{uri}/Storage"), VirtualMedia=link(f"{uri}/VirtualMedia"),
        Bios=link(f"{uri}/Bios"),
        Links={"Chassis": [link(CHASSIS_URI)], "ManagedBy": [link(MANAGER_URI)]},
        Actions={"#ComputerSystem.Reset": {
            "target": f"{uri}/Actions/ComputerSystem.Reset",
            "@Redfish.ActionInfo": f"{uri}/ResetActionInfo"}},
    )


def boot(vm: SystemView) -> Resource:
    """The ``Boot`` object: the override and the values it allows (legacy BIOS only)."""
    return {"@Redfish.WriteableProperties": ["BootSourceOverrideEnabled",
                                             "BootSourceOverrideTarget",
                                             "BootSourceOverrideMode"],
            "BootSourceOverrideEnabled": vm.boot.enabled,
            "BootSourceOverrideTarget": vm.boot.target,
            "BootSourceOverrideTarget@Redfish.AllowableValues": TARGET_NAMES,
            "BootSourceOverrideEnabled@Redfish.AllowableValues": ENABLED,
            "BootSourceOverrideMode": "Legacy",
            "BootSourceOverrideMode@Redfish.AllowableValues": ["Legacy"]}


def reset_action_info(vm: SystemView) -> Resource:
    """``ActionInfo`` of ``ComputerSystem.Reset``: the ResetType values a VM supports."""
    return resource("ActionInfo", f"{vm.uri}/ResetActionInfo", "ResetActionInfo",
                    "Reset action info",
                    Parameters=[{"Name": "ResetType", "Required": True,
                                 "DataType": "String",
                                 "AllowableValues": list(RESET_TYPES)}])


CAPABILITIES_ID = "Capabilities"
CAPABILITIES_URI = f"{SYSTEMS}/{CAPABILITIES_ID}"
CREATE_PROPERTIES = ("Name", "ProcessorSummary.Count", "MemorySummary.TotalSystemMemoryGiB")


def collection_capabilities() -> Resource:
    """``@Redfish.CollectionCapabilities`` of the Systems collection (DSP0266 "Collection
    capabilities"): a client may POST a new system (a VM) from constraints; the
    capabilities object says which properties and values the POST takes."""
    return {"@odata.type": "#CollectionCapabilities.v1_4_1.CollectionCapabilities",
            "Capabilities": [{"CapabilitiesObject": link(CAPABILITIES_URI),
                              "UseCase": "ComputerSystemConstrainedComposition",
                              "Links": {"TargetCollection": link(SYSTEMS)}}]}


def creation_capabilities(min_mb: int, max_mb: int, max_processors: int) -> Resource:
    """The capabilities object of creating a system: ``Name`` required,
    ``ProcessorSummary.Count`` (``@Redfish.AllowableNumbers`` 1…max) and
    ``MemorySummary.TotalSystemMemoryGiB`` (GiB, 1 MiB steps) optional."""
    def gib(mb: int) -> str:
        return f"{mb // 1024}" if mb % 1024 == 0 else repr(mb / 1024)

    return resource(
        "ComputerSystem", CAPABILITIES_URI, CAPABILITIES_ID, "Capabilities of a new system",
        Description="POST to the Systems collection creates a VM (Off) from these "
                    "properties; none other is taken",
        **{"Name@Redfish.RequiredOnCreate": True},
        ProcessorSummary={"Count@Redfish.OptionalOnCreate": True,
                          "Count@Redfish.AllowableNumbers": [f"1:{max_processors}"]},
        MemorySummary={"TotalSystemMemoryGiB@Redfish.OptionalOnCreate": True,
                       "TotalSystemMemoryGiB@Redfish.AllowableNumbers": [
                           f"{gib(min_mb)}:{gib(1)}:{gib(max_mb)}"]},
    )
