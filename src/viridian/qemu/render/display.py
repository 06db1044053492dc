"""The screen: a standard VGA adapter, shown only through VNC on a UNIX socket.

No TCP port is ever opened; the console is served from the socket by the service.
"""

from __future__ import annotations

from viridian.qemu.render.options import escape
from viridian.qemu.runtime_paths import RuntimePaths


def render_display(paths: RuntimePaths) -> list[str]:
    return ["-vga", "std", "-display", "none", "-vnc", f"unix:{escape(str(paths.vnc_socket))}"]
