"""OData scaffolding of the service (DSP0266 §6 "Service root", §8 "OData"): the service
root, the ``$metadata`` document that references DMTF's CSDL schemas, the OData service
document, links and collections."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from viridian.redfish import REDFISH_ROOT

Resource = dict[str, Any]

SCHEMA_URI = "http://redfish.dmtf.org/schemas/v1/{}_v1.xml"

# Versioned namespaces of DSP8010 2025.4 this service implements (schema file → type).
TYPES: dict[str, str] = {
    "ServiceRoot": "ServiceRoot.v1_20_0.ServiceRoot",
    "ComputerSystem": "ComputerSystem.v1_27_0.ComputerSystem",
    "SessionService": "SessionService.v1_2_0.SessionService",
    "Session": "Session.v1_8_0.Session",
    "AccountService": "AccountService.v1_18_0.AccountService",
    "ManagerAccount": "ManagerAccount.v1_14_0.ManagerAccount",
    "Role": "Role.v1_3_3.Role",
    "Manager": "Manager.v1_24_0.Manager",
    "Chassis": "Chassis.v1_28_0.Chassis",
    "TaskService": "TaskService.v1_3_0.TaskService",
    "Task": "Task.v1_7_4.Task",
    "EventService": "EventService.v1_12_0.EventService",
    "EventDestination": "EventDestination.v1_16_0.EventDestination",
    "Event": "Event.v1_13_0.Event",
    "Processor": "Processor.v1_22_0.Processor",
    "Memory": "Memory.v1_23_0.Memory",
    "EthernetInterface": "EthernetInterface.v1_12_4.EthernetInterface",
    "Storage": "Storage.v1_21_0.Storage",
    "Drive": "Drive.v1_22_0.Drive",
    "Volume": "Volume.v1_10_2.Volume",
    "VirtualMedia": "VirtualMedia.v1_6_5.VirtualMedia",
    "Bios": "Bios.v1_2_3.Bios",
    "ActionInfo": "ActionInfo.v1_5_0.ActionInfo",
}

COLLECTIONS = (
    "ComputerSystemCollection", "SessionCollection", "ManagerAccountCollection",
    "RoleCollection", "ManagerCollection", "ChassisCollection", "TaskCollection",
    "EventDestinationCollection", "ProcessorCollection", "MemoryCollection",
    "EthernetInterfaceCollection", "StorageCollection", "DriveCollection",
    "VolumeCollection", "VirtualMediaCollection",
)

# Referenced by the resources above (annotations, common types, messages).
SUPPORT_SCHEMAS = ("RedfishExtensions", "Resource", "Message", "Privileges",
                   "ResolutionStep", "RedfishError", "Settings")

# Schema files without an unversioned namespace, and the message type errors use.
_NAMESPACES = {"RedfishExtensions": ('RedfishExtensions.v1_0_0" Alias="Redfish',),
               "RedfishError": ("RedfishError.v1_0_2",),
               "Message": ("Message", "Message.v1_3_0")}


def odata_type(schema: str) -> str:
    """``@odata.type`` of a resource of ``schema`` (e.g. ``#Chassis.v1_28_0.Chassis``)."""
    if schema.endswith("Collection"):
        return f"#{schema}.{schema}"
    return "#" + TYPES[schema]


def link(uri: str) -> dict[str, str]:
    """A navigation link (``{"@odata.id": uri}``)."""
    return {"@odata.id": uri}


def resource(schema: str, uri: str, id_: str, name: str, **properties: Any) -> Resource:
    """A resource's common properties (DSP0266 §9.5) followed by ``properties``."""
    return {"@odata.id": uri, "@odata.type": odata_type(schema), "Id": id_,
            "Name": name, **properties}


def collection(schema: str, uri: str, name: str, members: Iterable[str]) -> Resource:
    """A resource collection of ``members`` (their URIs), DSP0266 §9.7."""
    links = [link(m) for m in members]
    return {"@odata.id": uri, "@odata.type": odata_type(schema), "Name": name,
            "Members@odata.count": len(links), "Members": links}


def service_root(uuid: str, product: str, version: str) -> Resource:
    """The service root (``/redfish/v1``); readable without authentication."""
    r = REDFISH_ROOT
    return {
        "@odata.id": f"{r}/", "@odata.type": odata_type("ServiceRoot"),
        "Id": "RootService", "Name": "viridian Redfish service",
        "RedfishVersion": "1.22.0", "UUID": uuid, "Product": product,
        "Vendor": "viridian", "ServiceIdentification": f"viridian {version}",
        "ProtocolFeaturesSupported": {
            "ExpandQuery": {"ExpandAll": False, "Levels": False, "Links": False,
                            "NoLinks": False},
            "FilterQuery": False, "SelectQuery": False, "OnlyMemberQuery": False,
            "ExcerptQuery": False, "DeepOperations": {"DeepPATCH": False, "DeepPOST": False},
        },
        "Systems": link(f"{r}/Systems"), "Managers": link(f"{r}/Managers"),
        "Chassis": link(f"{r}/Chassis"), "SessionService": link(f"{r}/SessionService"),
        "AccountService": link(f"{r}/AccountService"),
        "Tasks": link(f"{r}/TaskService"), "EventService": link(f"{r}/EventService"),
        "Links": {"Sessions": link(f"{r}/SessionService/Sessions")},
    }


def service_document() -> Resource:
    """The OData service document (``/redfish/v1/odata``, DSP0266 §8.3)."""
    r = REDFISH_ROOT
    entries = [("Service", f"{r}/"), ("Systems", f"{r}/Systems"),
               ("Managers", f"{r}/Managers"), ("Chassis", f"{r}/Chassis"),
               ("SessionService", f"{r}/SessionService"),
               ("AccountService", f"{r}/AccountService"),
               ("TaskService", f"{r}/TaskService"), ("EventService", f"{r}/EventService"),
               ("Sessions", f"{r}/SessionService/Sessions")]
    return {"@odata.context": f"{r}/$metadata",
            "value": [{"name": n, "kind": "Singleton", "url": u} for n, u in entries]}


def metadata_xml() -> str:
    """``$metadata``: one ``edmx:Reference`` per DMTF schema file used (DSP0266 §8.4),
    and the entity container typed by the service root."""
    names = [*SUPPORT_SCHEMAS, *sorted(TYPES), *COLLECTIONS]
    refs = []
    for name in dict.fromkeys(names):
        includes = [f'    <edmx:Include Namespace="{ns}"/>'
                    for ns in _NAMESPACES.get(name, (name,))]
        if name in TYPES:
            includes.append(f'    <edmx:Include Namespace="{TYPES[name].rsplit(".", 1)[0]}"/>')
        if name == "ServiceRoot":
            includes.append('    <edmx:Include Namespace="ServiceRoot.v1_0_0"/>')
        refs.append(f'  <edmx:Reference Uri="{SCHEMA_URI.format(name)}">\n'
                    + "\n".join(includes) + "\n  </edmx:Reference>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n'
            + "\n".join(refs) + "\n"
            '  <edmx:DataServices>\n'
            '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">\n'
            '      <EntityContainer Name="Service" '
            'Extends="ServiceRoot.v1_0_0.ServiceContainer"/>\n'
            '    </Schema>\n'
            '  </edmx:DataServices>\n'
            '</edmx:Edmx>\n')
