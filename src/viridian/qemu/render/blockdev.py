"""Block nodes: every image is opened with ``-blockdev`` and an explicit format driver.

Two nodes per image: ``<id>-file`` (driver ``file``) and ``<id>-fmt`` (the format driver
on top). The format is never left to probing: a fixed VHD would be probed as ``raw``.
Differencing VHDs never reach here (the service guarantees it); only the format matters.
A host block device (pass-through, a path under ``/dev/``) is opened with QEMU's
``host_device`` protocol driver instead of ``file`` (which refuses block devices).

A disk served by the VM's storage daemon (``nbd_socket`` given; docs/architecture.md,
"The storage path") keeps the two node names: ``<id>-file`` is ``driver=nbd`` on the
daemon's socket, export named by the device id, and ``<id>-fmt`` is ``raw`` over it.
"""

from __future__ import annotations

from viridian.errors import InvalidSetting
from viridian.model import DiskFormat
from viridian.qemu.render.naming import file_node, format_node
from viridian.qemu.render.options import escape, opts

ALLOWED_FORMATS = "vpc, vhdx, qcow2 or raw (the service resolves the format before a start)"


def require_format(setting: str, image_format: DiskFormat | None) -> DiskFormat:
    """``image_format``, or :class:`InvalidSetting` naming ``setting`` when unresolved."""
    if image_format is None:
        raise InvalidSetting(setting, None, ALLOWED_FORMATS, reason="disk format not resolved")
    return image_format


def protocol_driver(path: str) -> str:
    """``host_device`` for a host block device (pass-through), else ``file``."""
    return "host_device" if path.startswith("/dev/") else "file"


def render_blockdev(
    device_id: str,
    path: str,
    image_format: DiskFormat,
    *,
    read_only: bool = False,
    nbd_socket: str | None = None,
) -> list[str]:
    """The two ``-blockdev`` options opening ``path`` as ``image_format``, or, with
    ``nbd_socket``, opening the storage daemon's export of ``path``."""
    if nbd_socket is not None:
        return _render_nbd(device_id, nbd_socket)
    read_only_opt = "on" if read_only else None
    return [
        "-blockdev",
        opts(f"driver={protocol_driver(path)}", filename=path, node_name=file_node(device_id),
             read_only=read_only_opt),
        "-blockdev",
        opts(
            f"driver={image_format.value}",
            file=file_node(device_id),
            node_name=format_node(device_id),
            read_only=read_only_opt,
        ),
    ]


def _render_nbd(device_id: str, nbd_socket: str) -> list[str]:
    return [
        "-blockdev",
        opts(f"driver=nbd,server.type=unix,server.path={escape(nbd_socket)}", export=device_id,
             node_name=file_node(device_id)),
        "-blockdev",
        opts("driver=raw", file=file_node(device_id), node_name=format_node(device_id)),
    ]
