"""Hyper-V (Windows Server 2008) generation-1 limits, as named constants.

Values follow Hyper-V 2008's VM Settings dialog and its published maximums
("Hyper-V RTM: configuration maximums"): 64 GB memory per VM, 4 virtual processors,
2 IDE controllers x 2 locations, 4 SCSI controllers x 64 disks, 8 synthetic + 4 legacy
network adapters, COM1/COM2 and one floppy drive. Constants marked *viridian* are our own
bounds where Hyper-V states none that a Linux host can honour.
"""

from __future__ import annotations

from typing import Final

# Memory (MB, binary: 1 MB = 1 MiB, as Hyper-V counts).
MEMORY_MIN_MB: Final = 8
MEMORY_MAX_MB: Final = 64 * 1024
MEMORY_DEFAULT_MB: Final = 512

# Processor.
PROCESSOR_COUNT_MIN: Final = 1
PROCESSOR_COUNT_MAX: Final = 4
PROCESSOR_COUNT_DEFAULT: Final = 1
PERCENT_MIN: Final = 0
PERCENT_MAX: Final = 100
RESERVE_DEFAULT_PCT: Final = 0
LIMIT_DEFAULT_PCT: Final = 100
WEIGHT_MIN: Final = 1
WEIGHT_MAX: Final = 10_000
WEIGHT_DEFAULT: Final = 100

# IDE: controllers 0..1, locations 0..1.
IDE_CONTROLLERS: Final = 2
IDE_LOCATIONS: Final = 2
# SCSI: controllers 0..3, locations 0..63.
SCSI_CONTROLLERS: Final = 4
SCSI_DISKS_PER_CONTROLLER: Final = 64

# Network adapters.
SYNTHETIC_ADAPTERS_MAX: Final = 8
LEGACY_ADAPTERS_MAX: Final = 4
VLAN_MIN: Final = 1
VLAN_MAX: Final = 4094

# Serial ports and floppy.
COM_PORTS: Final = (1, 2)
FLOPPY_DRIVES: Final = 1

# Names and text.
VM_NAME_MAX_CHARS: Final = 100
NOTES_MAX_CHARS: Final = 4096  # viridian
SWITCH_NAME_MAX_CHARS: Final = 100  # viridian

# Automatic start delay, seconds.
AUTOMATIC_START_DELAY_MAX_S: Final = 86_400  # viridian: one day

# A UNIX socket path (a COM named pipe) must fit sockaddr_un.sun_path (108 bytes with NUL).
UNIX_SOCKET_PATH_MAX_BYTES: Final = 107
