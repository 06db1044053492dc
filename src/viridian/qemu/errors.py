"""Errors of the QEMU worker layer, all under one root, :class:`QemuError`.

Hierarchy::

    viridian.errors.HostError
     └── QemuError                 anything that went wrong talking to or running QEMU
          ├── QemuStartError       QEMU did not start, or did not answer QMP in time
          ├── MonitorError         a QMP command failed (says what was sent and received)
          │    └── MonitorClosed   the QMP connection ended (QEMU exited or was closed)
          ├── QemuTimeout          an awaited event or exit did not happen in time
          ├── WorkerGone           the VM's QEMU process no longer exists (``reason`` says why)
          ├── RuntimeRecordError   the runtime record is missing, unreadable or too new
          └── GuestAgentError      the guest agent failed, refused or is not there
               └── GuestAgentTimeout  the guest agent did not answer in time

Every error raised at this layer's boundary chains the foreign exception it translates
(``raise ... from err``), so the root cause stays visible in tracebacks and logs.
"""

from __future__ import annotations

from typing import Any

from viridian.errors import HostError


class QemuError(HostError):
    """Root of the QEMU worker layer's errors."""

    code = "qemu_error"


class QemuStartError(QemuError):
    """QEMU could not be started; the message includes the end of its log when there is one."""

    code = "qemu_start_failed"


class MonitorError(QemuError):
    """A QMP command failed. Details: ``command``, ``arguments``, ``received``."""

    code = "qmp_error"

    def __init__(
        self,
        message: str,
        *,
        command: str | None = None,
        arguments: Any = None,
        received: Any = None,
        **details: Any,
    ) -> None:
        super().__init__(
            message, command=command, arguments=arguments, received=received, **details
        )
        self.command = command
        self.arguments = arguments
        self.received = received


class MonitorClosed(MonitorError):
    """The QMP connection is not (or no longer) there."""

    code = "qmp_closed"


class QemuTimeout(QemuError):
    """Something awaited from QEMU did not happen within its time limit."""

    code = "qemu_timeout"


class WorkerGone(QemuError):
    """The VM's QEMU process does not exist any more. ``reason`` says why, for the admin."""

    code = "worker_gone"

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason, **details)
        self.reason = reason


class RuntimeRecordError(QemuError):
    """The runtime record is missing, malformed, or written by a newer viridian."""

    code = "runtime_record_invalid"


class GuestAgentError(QemuError):
    """The guest agent refused a command, answered nonsense, or cannot be reached."""

    code = "guest_agent_error"


class GuestAgentTimeout(GuestAgentError):
    """The guest agent did not answer within the time limit."""

    code = "guest_agent_timeout"
