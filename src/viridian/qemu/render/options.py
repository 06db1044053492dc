"""Writing QEMU option strings (``key=value,key=value``).

QEMU's option syntaxes (QemuOpts and keyval, as used by ``-device``, ``-blockdev``,
``-chardev``, ``-netdev``, ``-vnc``, ``-name``) split on ',' and take ',,' as a literal
comma (qemu-options.hx, "-blockdev"; util/keyval.c). Values here are escaped so that a
path or VM name with a comma cannot smuggle in another option.
"""

from __future__ import annotations


def escape(value: str) -> str:
    """``value`` with every ',' doubled."""
    return value.replace(",", ",,")


def opts(head: str | None = None, /, **values: str | int | None) -> str:
    """``head,key=value,...``; None values are left out, '_' in keys becomes '-'.

    ``head`` is the implied first option (a driver or backend name), written as is.
    """
    parts = [head] if head else []
    for key, value in values.items():
        if value is not None:
            parts.append(f"{key.replace('_', '-')}={escape(str(value))}")
    return ",".join(parts)
