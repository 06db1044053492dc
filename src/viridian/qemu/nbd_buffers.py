"""Send buffers of the NBD connections between a VM's QEMU and its storage daemon.

A UNIX stream socket's send buffer (``SO_SNDBUF``; ``net.core.wmem_default``, 208 KiB on
Debian) bounds what one side may write before the other has read it: a 1 MiB NBD write
request or read reply crosses in five writes or more, each waiting for the reader to wake,
and with several requests in flight (concurrent streams, the guest's readahead and
writeback) their payloads queue behind a full buffer. Neither QEMU nor
``qemu-storage-daemon`` has an option to size it, so the service sets it from outside
once the connections exist (docs/architecture.md, "The storage daemon"): it duplicates
each connected socket of the two processes whose own or peer address is the daemon's NBD
socket (``pidfd_getfd(2)``, Linux ≥ 5.6; needs the right to trace the process — the
service's own children, or ``CAP_SYS_PTRACE``) and sets ``SO_SNDBUFFORCE`` (needs
``CAP_NET_ADMIN``; ``SO_SNDBUF`` would be capped at ``net.core.wmem_max``). The socket is
the same kernel object in both processes, so the duplicate is closed at once. Best
effort: when it is refused, I/O works as before with the default buffers.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import socket
from pathlib import Path

__all__ = ["NBD_SEND_BUFFER", "widen_nbd_send_buffers"]

log = logging.getLogger(__name__)

NBD_SEND_BUFFER = 2 * 1024 * 1024
"""The value given to ``SO_SNDBUFFORCE``; the kernel doubles it for its bookkeeping
(socket(7)), so each side may queue 4 MiB: four 1 MiB requests in flight."""

_SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture (asm-generic)
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)  # asm-generic/socket.h
_libc = ctypes.CDLL(None, use_errno=True)


def widen_nbd_send_buffers(pids: tuple[int, ...], nbd_socket: Path) -> int:
    """Set the send buffer of every connection to ``nbd_socket`` held by ``pids`` (QEMU
    and its daemon); how many sockets were changed. Never raises: a process that is gone
    or a refused call is logged and skipped."""
    changed = 0
    for pid in pids:
        try:
            changed += _widen_in(pid, str(nbd_socket))
        except OSError as err:
            log.info("NBD send buffers of process %d left at the default: %s", pid, err)
    return changed


def _widen_in(pid: int, address: str) -> int:
    """:raises OSError: the process is gone, or may not be traced, or the option is refused."""
    changed = 0
    pidfd = os.pidfd_open(pid)
    try:
        for fd in _socket_fds(pid):
            copy = _pidfd_getfd(pidfd, fd)
            if copy is None:
                continue
            with socket.socket(fileno=copy) as sock:
                if _connected_to(sock, address):
                    sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, NBD_SEND_BUFFER)
                    changed += 1
    finally:
        os.close(pidfd)
    return changed


def _socket_fds(pid: int) -> list[int]:
    fds = []
    for entry in os.scandir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            if os.readlink(entry.path).startswith("socket:"):
                fds.append(int(entry.name))
    return fds


def _pidfd_getfd(pidfd: int, fd: int) -> int | None:
    """A duplicate of the process's ``fd`` in this process; None when it was closed since."""
    copy = int(_libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0))
    if copy >= 0:
        return copy
    code = ctypes.get_errno()
    if code == errno.EBADF:
        return None
    raise OSError(code, f"pidfd_getfd: {os.strerror(code)}")


def _connected_to(sock: socket.socket, address: str) -> bool:
    """A connected UNIX stream socket whose own (the daemon's accepted end) or peer (QEMU's
    end) address is ``address``; the daemon's listening socket is not one."""
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        return False
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return False
        ends = (sock.getsockname(), sock.getpeername())
    except OSError:  # not connected (any more)
        return False
    return address in ends
