"""The management channels: QMP (control monitor) and the guest agent's virtio-serial port.

Both are UNIX sockets in the runtime folder, listening without waiting, so QEMU starts
whether or not the service is connected, and a restarted service can reconnect.
"""

from __future__ import annotations

from viridian.qemu.render.naming import (
    GUEST_AGENT_CHARDEV,
    GUEST_AGENT_PORT_NAME,
    QMP_CHARDEV,
    VIRTIO_SERIAL_ID,
)
from viridian.qemu.render.options import opts
from viridian.qemu.runtime_paths import RuntimePaths


def render_management(paths: RuntimePaths) -> list[str]:
    """QMP monitor and guest-agent channel."""
    return [*_render_qmp(paths), *_render_guest_agent(paths)]


def _render_qmp(paths: RuntimePaths) -> list[str]:
    chardev = opts("socket", id=QMP_CHARDEV, path=str(paths.qmp_socket), server="on", wait="off")
    return ["-chardev", chardev, "-mon", opts(chardev=QMP_CHARDEV, mode="control")]


def _render_guest_agent(paths: RuntimePaths) -> list[str]:
    chardev = opts(
        "socket",
        id=GUEST_AGENT_CHARDEV,
        path=str(paths.guest_agent_socket),
        server="on",
        wait="off",
    )
    port = opts(
        "virtserialport",
        bus=f"{VIRTIO_SERIAL_ID}.0",
        chardev=GUEST_AGENT_CHARDEV,
        name=GUEST_AGENT_PORT_NAME,
    )
    return [
        "-device",
        opts("virtio-serial-pci", id=VIRTIO_SERIAL_ID),
        "-chardev",
        chardev,
        "-device",
        port,
    ]
