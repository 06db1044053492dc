"""A listening socket that must never receive the local token (issue 13 #7)."""

from __future__ import annotations

import socket
from types import TracebackType


class Collector:
    """Listens on a free loopback port and never answers. :meth:`received` drains every
    connection the kernel accepted meanwhile and returns all bytes sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0

    def received(self) -> bytes:
        data = b""
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return data
            self.connections += 1
            with conn:
                conn.settimeout(2)
                data += _read_available(conn)

    def __enter__(self) -> Collector:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.sock.close()


def _read_available(conn: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except (TimeoutError, OSError):
        pass
    return data
