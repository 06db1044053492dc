"""The one error root of viridian (except `viridian.disks`, which has its own root).

Hierarchy::

    ViridianError                      500 / exit 1   (unexpected; a bug or host failure)
     ├── InvalidSetting                400 / exit 2   a setting's value is outside its allowed range
     ├── BadRequest                    400 / exit 2   malformed request (unknown field, bad syntax)
     ├── NotFound                      404 / exit 3   unknown VM, job, file
     ├── Conflict                      409 / exit 4   duplicate name, file in use
     │    ├── InvalidTransition        409 / exit 4   request not allowed in the VM's current state
     │    └── AdmissionRefused         409 / exit 4   not enough host resources; states the numbers
     ├── Unauthorized                  401 / exit 5
     └── HostError                     500 / exit 6   QEMU, kernel or file-system failure

Each boundary translates these exactly once: the API maps ``http_status`` and
``to_dict()`` into a JSON body; the CLI prints ``str(err)`` and exits with ``exit_code``.
Every error carries a message that says what was wrong, the allowed values where there
are any, and — for refusals — that nothing was changed.
"""

from __future__ import annotations

from typing import Any


class ViridianError(Exception):
    """Root of all viridian errors. ``details`` is JSON-serialisable context."""

    http_status = 500
    exit_code = 1
    code = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidSetting(ViridianError):
    """A setting's value is invalid. Details: ``setting``, ``value``, ``allowed``."""

    http_status = 400
    exit_code = 2
    code = "invalid_setting"

    def __init__(self, setting: str, value: Any, allowed: str, reason: str = "") -> None:
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"invalid value {value!r} for {setting}{why}; allowed: {allowed}",
            setting=setting,
            value=value if isinstance(value, int | float | str | bool | None) else repr(value),
            allowed=allowed,
        )


class BadRequest(ViridianError):
    http_status = 400
    exit_code = 2
    code = "bad_request"


class NotFound(ViridianError):
    http_status = 404
    exit_code = 3
    code = "not_found"


class Conflict(ViridianError):
    http_status = 409
    exit_code = 4
    code = "conflict"


class InvalidTransition(Conflict):
    """A request is not valid in the VM's current state. Details: ``state``, ``allowed``."""

    code = "invalid_transition"

    def __init__(self, vm: str, request: str, state: str, allowed: list[str]) -> None:
        allowed_text = ", ".join(allowed) if allowed else "none"
        super().__init__(
            f"cannot {request} VM '{vm}': it is {state}; allowed in this state: {allowed_text}",
            vm=vm,
            request=request,
            state=state,
            allowed=allowed,
        )


class AdmissionRefused(Conflict):
    code = "admission_refused"


class Unauthorized(ViridianError):
    http_status = 401
    exit_code = 5
    code = "unauthorized"


class HostError(ViridianError):
    exit_code = 6
    code = "host_error"
