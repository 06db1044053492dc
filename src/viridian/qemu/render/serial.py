"""COM1 and COM2: 16550A UARTs (``isa-serial``) that generation-1 hardware always has.

"None" means unconnected (a ``null`` chardev); "pipe" is a UNIX socket the admin names,
or ``com<n>.sock`` in the runtime folder, listening without waiting for a client;
"remote" connects to ``HOST:PORT`` over TCP (Hyper-V's pipe on a remote computer). With
``reconnect`` QEMU starts whether or not the far end listens, connects in the background
and tries again every :data:`REMOTE_RECONNECT_S` seconds after a disconnect.
Whatever the guest writes is always appended to ``com<n>.log`` in the runtime folder
(chardev ``logfile``), so boot messages are kept even with no one attached.
"""

from __future__ import annotations

from viridian.model import ComKind, ComPort, VMSettings
from viridian.model.address import parse_address
from viridian.model.limits import COM_PORTS
from viridian.qemu.render.naming import com_id
from viridian.qemu.render.options import opts
from viridian.qemu.runtime_paths import RuntimePaths

REMOTE_RECONNECT_S = 1


def render_serial(settings: VMSettings, paths: RuntimePaths) -> list[str]:
    """COM1 and COM2 (ISA index 0 and 1)."""
    args: list[str] = []
    for port in COM_PORTS:
        args += _render_port(port, settings.com(port), paths)
    return args


def _render_port(port: int, com: ComPort, paths: RuntimePaths) -> list[str]:
    log = {"logfile": str(paths.com_log(port)), "logappend": "on"}
    if com.kind == ComKind.PIPE:
        socket_path = com.path or str(paths.com_socket(port))
        chardev = opts("socket", id=com_id(port), path=socket_path, server="on", wait="off", **log)
    elif com.kind == ComKind.REMOTE and com.address is not None:
        host, tcp_port = parse_address(com.address, setting=f"com{port}.address")
        chardev = opts(
            "socket",
            id=com_id(port),
            host=host,
            port=tcp_port,
            server="off",
            reconnect=REMOTE_RECONNECT_S,
            **log,
        )
    else:
        chardev = opts("null", id=com_id(port), **log)
    device = opts("isa-serial", chardev=com_id(port), index=port - 1, id=com_id(port))
    return ["-chardev", chardev, "-device", device]
