"""Pure rendering of the boot loaders' configuration and the guest's kernel command line.

ISOLINUX (ISO on an IDE DVD drive) and SYSLINUX (FAT partition of the disk image) read
the same configuration language (syslinux wiki, "Config"); both boot straight into the
one entry without a prompt and mirror their messages to COM1.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

__all__ = [
    "BASE_KERNEL_PARAMS",
    "kernel_command_line",
    "render_isolinux_cfg",
    "render_syslinux_cfg",
    "viridian_cmd_param",
]

# tty0 first so the VGA console shows the kernel; ttyS0 last so /dev/console (and thus
# init's markers) is COM1 at 115200 baud. ``no_timer_check`` (kernel-parameters.txt:
# "Disables the code which tests for broken timer IRQ sources"): under TCG on a loaded host
# the vCPU may not run while the kernel counts timer ticks at boot, and it then panics with
# "IO-APIC + timer doesn't work!" (seen in a loaded test run); hypervisors' guest images
# pass it for that reason.
BASE_KERNEL_PARAMS: tuple[str, ...] = ("console=tty0", "console=ttyS0,115200", "quiet",
                                       "no_timer_check")


def kernel_command_line(extra: Sequence[str] = ()) -> str:
    """The guest kernel's command line: :data:`BASE_KERNEL_PARAMS` then ``extra``."""
    return " ".join((*BASE_KERNEL_PARAMS, *extra))


def viridian_cmd_param(script: str) -> str:
    """``viridian.cmd=<base64>``: a kernel parameter making init run ``script`` after READY.

    The output of the script appears as ``VIRIDIAN-GUEST CFG <line>`` markers, exactly as
    for a config disk. Base64 keeps spaces and quotes out of the kernel command line.
    """
    return "viridian.cmd=" + base64.b64encode(script.encode()).decode()


def _render(kernel: str, initrd: str, append: str) -> str:
    return (
        "SERIAL 0 115200\n"
        "DEFAULT viridian\n"
        "PROMPT 0\n"
        "TIMEOUT 0\n"
        "LABEL viridian\n"
        f"  KERNEL {kernel}\n"
        f"  INITRD {initrd}\n"
        f"  APPEND {append}\n"
    )


def render_isolinux_cfg(append: str | None = None) -> str:
    """``isolinux/isolinux.cfg`` for the ISO (kernel and initrd under ``/boot``)."""
    return _render("/boot/vmlinuz", "/boot/initrd.img", append or kernel_command_line())


def render_syslinux_cfg(append: str | None = None) -> str:
    """``syslinux.cfg`` at the root of the disk image's FAT partition."""
    return _render("/vmlinuz", "/initrd.img", append or kernel_command_line())
