"""Ids of devices, drives and block nodes, derived from each device's position.

Stable names let later code (hot plug, media change, the runtime record) address a
device without reading the argv back: ``ide1-0`` is IDE controller 1, location 0;
``scsi2-17`` is SCSI controller 2, location 17; ``nic0`` the first network adapter.
Block node names add ``-file`` (the protocol node) and ``-fmt`` (the format node).
"""

from __future__ import annotations

FLOPPY_ID = "floppy0"
QMP_CHARDEV = "qmp"
GUEST_AGENT_CHARDEV = "qga0"
VIRTIO_SERIAL_ID = "vser0"
GUEST_AGENT_PORT_NAME = "org.qemu.guest_agent.0"


def ide_id(controller: int, location: int) -> str:
    return f"ide{controller}-{location}"


def scsi_controller_id(controller: int) -> str:
    return f"scsi{controller}"


def scsi_disk_id(controller: int, location: int) -> str:
    return f"scsi{controller}-{location}"


def nic_id(index: int) -> str:
    return f"nic{index}"


def netdev_id(index: int) -> str:
    return f"net{index}"


def com_id(port: int) -> str:
    return f"com{port}"


def file_node(device_id: str) -> str:
    return f"{device_id}-file"


def format_node(device_id: str) -> str:
    return f"{device_id}-fmt"
