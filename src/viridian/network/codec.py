"""Switches as JSON-ready dicts (the catalog's and the API's shape) and back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from viridian.network.model import Route, Switch, SwitchType, Uplink

__all__ = ["switch_from_dict", "switch_to_dict"]


def switch_to_dict(switch: Switch) -> dict[str, Any]:
    uplink = switch.uplink
    return {
        "name": switch.name,
        "type": switch.type.value,
        "number": switch.number,
        "adapter": switch.adapter,
        "allow_management_os": switch.allow_management_os,
        "subnet": switch.subnet,
        "notes": switch.notes,
        "uplink": None
        if uplink is None
        else {
            "adapter": uplink.adapter,
            "mac": uplink.mac,
            "addresses": list(uplink.addresses),
            "routes": [
                {"dst": r.dst, "gateway": r.gateway, "metric": r.metric, "family": r.family}
                for r in uplink.routes
            ],
        },
    }


def switch_from_dict(data: Mapping[str, Any]) -> Switch:
    uplink = data.get("uplink")
    return Switch(
        name=str(data["name"]),
        type=SwitchType(data["type"]),
        number=int(data["number"]),
        adapter=data.get("adapter"),
        allow_management_os=bool(data.get("allow_management_os")),
        subnet=data.get("subnet"),
        notes=str(data.get("notes") or ""),
        uplink=None
        if not uplink
        else Uplink(
            str(uplink["adapter"]),
            str(uplink["mac"]),
            tuple(uplink["addresses"]),
            tuple(
                Route(r["dst"], r.get("gateway"), r.get("metric"), int(r.get("family", 4)))
                for r in uplink["routes"]
            ),
        ),
    )
