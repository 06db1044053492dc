"""viridian.model — a VM's settings (Hyper-V generation 1), their limits and states.

Pure: no I/O, imports nothing of viridian but :mod:`viridian.errors`.

- :mod:`~viridian.model.limits` — Hyper-V 2008 Gen1 limits as named constants
- :mod:`~viridian.model.choices` — the enumerated values (drive kinds, formats, actions)
- :mod:`~viridian.model.settings` — the frozen dataclasses (:class:`VMSettings`)
- :mod:`~viridian.model.codec` — the settings dict (``to_dict``/``settings_from_dict``)
- :mod:`~viridian.model.validation` — the rules (:func:`validate`)
- :mod:`~viridian.model.merge` — partial updates (:func:`merge_settings`)
- :mod:`~viridian.model.sizes` — "512MB", "1.5GiB"
- :mod:`~viridian.model.mac` — MAC address rules
- :mod:`~viridian.model.states` — states, requests, the transition table
"""

from viridian.model.choices import (
    AdapterKind,
    BootDevice,
    ComKind,
    DiskFormat,
    DriveKind,
    MacMode,
    StartAction,
    StopAction,
)
from viridian.model.codec import default_settings, settings_from_dict, to_dict
from viridian.model.mac import normalise_mac
from viridian.model.merge import merge_settings
from viridian.model.settings import (
    USER_SWITCH,
    AutomaticStart,
    AutomaticStop,
    BiosSettings,
    ComPort,
    FloppyDrive,
    IdeDrive,
    IntegrationServices,
    MemorySettings,
    NetworkAdapter,
    ProcessorSettings,
    ScsiController,
    ScsiDisk,
    VMSettings,
    host_switches,
)
from viridian.model.sizes import parse_size, parse_size_mb
from viridian.model.states import (
    TRANSITIONS,
    Request,
    Transition,
    VMState,
    allowed_requests,
    check_request,
)
from viridian.model.validation import check_vm_name, validate

__all__ = [
    "TRANSITIONS",
    "USER_SWITCH",
    "AdapterKind",
    "AutomaticStart",
    "AutomaticStop",
    "BiosSettings",
    "BootDevice",
    "ComKind",
    "ComPort",
    "DiskFormat",
    "DriveKind",
    "FloppyDrive",
    "IdeDrive",
    "IntegrationServices",
    "MacMode",
    "MemorySettings",
    "NetworkAdapter",
    "ProcessorSettings",
    "Request",
    "ScsiController",
    "ScsiDisk",
    "StartAction",
    "StopAction",
    "Transition",
    "VMSettings",
    "VMState",
    "allowed_requests",
    "check_request",
    "check_vm_name",
    "default_settings",
    "host_switches",
    "merge_settings",
    "normalise_mac",
    "parse_size",
    "parse_size_mb",
    "settings_from_dict",
    "to_dict",
    "validate",
]
