"""The one error root of viridian, and the mapped second root of `viridian.disks`.

Hierarchy (the table of docs/api.md, "Codes, HTTP statuses and CLI exit codes")::

    ViridianError                      500 / exit 1   (unexpected; a bug or host failure)
     ├── InvalidSetting                400 / exit 2   a setting's value is outside its allowed range
     ├── BadRequest                    400 / exit 2   malformed request (unknown field, bad syntax)
     │    └── MethodNotAllowed         405 / exit 2   an HTTP method the route does not take
     ├── NotFound                      404 / exit 3   unknown VM, job, file
     ├── Conflict                      409 / exit 4   duplicate name, file in use
     │    ├── InvalidTransition        409 / exit 4   request not allowed in the VM's current state
     │    └── AdmissionRefused         409 / exit 4   not enough host resources; states the numbers
     ├── Unauthorized                  401 / exit 5
     ├── Forbidden                     403 / exit 5   a console session failed the CSRF/origin check
     ├── HostError                     500 / exit 6   QEMU, kernel or file-system failure
     └── Interrupted                   500 / exit 6   (jobs) the service stopped while it ran

``viridian.disks.errors.DiskError`` cannot derive from this root (the disk library imports
nothing of viridian) but carries the same ``http_status``, ``exit_code`` and ``code``
class attributes: :func:`error_object`, :func:`http_status_of` and :func:`exit_code_of`
treat every exception with those attributes alike.

Each boundary translates these exactly once: the API (``viridian.service.errors_http``)
maps ``http_status`` and :func:`error_object` into a JSON body; the CLI prints the message
and exits with ``exit_code``.
Every error carries a message that says what was wrong, the allowed values where there
are any, and — for refusals — that nothing was changed.
"""

from __future__ import annotations

from typing import Any, Protocol


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


class MethodNotAllowed(BadRequest):
    """An HTTP method a route does not take (the allowed ones are named)."""

    http_status = 405


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


class Forbidden(ViridianError):
    """A console session's request failed the CSRF or origin check."""

    http_status = 403
    exit_code = 5
    code = "forbidden"


class HostError(ViridianError):
    exit_code = 6
    code = "host_error"


class Interrupted(HostError):
    """A job that was running when the service stopped."""

    code = "interrupted"


class MappedError(Protocol):
    """What an error of the second root (``viridian.disks``) carries, like this root."""

    http_status: int
    exit_code: int
    code: str


def is_mapped(err: BaseException) -> bool:
    """Whether ``err`` carries the table's ``http_status``, ``exit_code`` and ``code``."""
    return all(isinstance(getattr(err, name, None), kind)
               for name, kind in (("http_status", int), ("exit_code", int), ("code", str)))


def as_viridian(err: BaseException) -> ViridianError:
    """``err`` as a :class:`ViridianError` with the same status, exit code, code and
    message (a bug or foreign error becomes ``internal_error`` naming its type)."""
    if isinstance(err, ViridianError):
        return err
    if is_mapped(err):
        mapped = ViridianError(str(err), **dict(getattr(err, "details", {}) or {}))
        mapped.http_status = int(getattr(err, "http_status"))  # noqa: B009
        mapped.exit_code = int(getattr(err, "exit_code"))  # noqa: B009
        mapped.code = str(getattr(err, "code"))  # noqa: B009
        return mapped
    return ViridianError(f"{type(err).__name__}: {err}")


def error_object(err: BaseException) -> dict[str, Any]:
    """The error object of docs/api.md (``{"code", "message", "details"}``) of ``err``."""
    return as_viridian(err).to_dict()
