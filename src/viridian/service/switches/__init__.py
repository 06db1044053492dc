"""The virtual switches capability: switches, VM ports and reconcile (:mod:`.service`),
their record in the catalog (:class:`.service.SwitchStore`) and routes (:mod:`.routes`)."""

from viridian.service.switches.service import (
    SwitchService,
    SwitchStore,
    adapters_changeable_live,
    is_virtual,
    vm_ports,
)

__all__ = ["SwitchService", "SwitchStore", "adapters_changeable_live", "is_virtual", "vm_ports"]
