"""DMTF Redfish for viridian's VMs: the pure mapping from the VM model to Redfish
resources (docs/architecture.md, "Redfish").

Each VM is one ``ComputerSystem`` (``SystemType: Virtual``); the service is one
``Manager`` (``ManagerType: Service``) and the host one ``Chassis``. Nothing here does
I/O: the service's Redfish capability (``viridian.service.redfish``) gathers a
:class:`~viridian.redfish.systems.SystemView` per VM and serves what these functions
return. Schemas are DMTF's DSP8010 2025.4 (CSDL), messages the Base registry 1.22.1
shipped in ``registries/`` (BSD 3-Clause, DMTF).

Modules: :mod:`.odata` (service root, ``$metadata``, OData service document,
collections), :mod:`.messages` (Base registry messages and error bodies), :mod:`.power`
(states ↔ ``PowerState``, ``ResetType`` ↔ requests), :mod:`.boot` (boot source
overrides), :mod:`.systems` (``ComputerSystem`` and its ``ActionInfo``), :mod:`.devices`
(processors, memory, Ethernet interfaces, storage, virtual media, BIOS),
:mod:`.services` (managers, chassis, sessions, accounts, roles, tasks, events),
:mod:`.privileges` (roles and the privilege each request needs).
"""

from __future__ import annotations

REDFISH_ROOT = "/redfish/v1"

__all__ = ["REDFISH_ROOT"]
