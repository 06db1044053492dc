"""Options about the QEMU process itself rather than the virtual hardware.

- ``-sandbox``: seccomp; QEMU may not use obsolete syscalls, change privileges, spawn
  processes (so migration to ``exec:`` targets is impossible — save to a file or fd) or
  change scheduling/affinity (the host's cgroups own that).
- ``-msg timestamp=on``: time-stamped messages in ``qemu.log``.
- ``-pidfile``: how a restarted service finds the process.
- ``-incoming defer``: wait for a saved state to be streamed in over QMP (restore).

No ``-daemonize``: the process runner decides how QEMU is detached.
"""

from __future__ import annotations

from viridian.qemu.runtime_paths import RuntimePaths

SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


def render_process(paths: RuntimePaths) -> list[str]:
    return ["-sandbox", SANDBOX, "-msg", "timestamp=on", "-pidfile", str(paths.pid_file)]


def render_incoming(incoming: bool) -> list[str]:
    return ["-incoming", "defer"] if incoming else []
