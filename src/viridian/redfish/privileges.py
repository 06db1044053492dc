"""Redfish roles mapped to viridian's roles, and the viridian operation each Redfish request
needs (docs/architecture.md, "Redfish" → "Accounts and privileges"). Pure.

Redfish's three predefined roles (DSP0266 §13.2) are grants of viridian's built-in roles on
the whole host: ``Administrator`` ⇄ Administrator, ``Operator`` ⇄ Operator, ``ReadOnly`` ⇄
Viewer. An account holding none of those host-wide grants (only grants on single VMs or
tags, custom roles, or nothing) shows the role ``Delegated``: what it may do comes from its
viridian grants, request by request. Every request is authorized by
:meth:`viridian.access.AccessControl.authorize` with the operation
:func:`operation_for` names — Redfish privileges are only described, never checked.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from viridian.redfish import REDFISH_ROOT

SELF = "access.self"  # viridian.access.operations.SELF: every authenticated caller


class Role(Enum):
    ADMINISTRATOR = "Administrator"
    OPERATOR = "Operator"
    READ_ONLY = "ReadOnly"
    DELEGATED = "Delegated"


VIRIDIAN_ROLE: dict[Role, str] = {Role.ADMINISTRATOR: "Administrator",
                                  Role.OPERATOR: "Operator", Role.READ_ONLY: "Viewer"}
"""The viridian built-in role a Redfish role is a host-wide grant of."""

ASSIGNABLE = [r.value for r in VIRIDIAN_ROLE]

ROLE_PRIVILEGES: dict[Role, tuple[str, ...]] = {
    Role.ADMINISTRATOR: ("Login", "ConfigureManager", "ConfigureUsers", "ConfigureSelf",
                         "ConfigureComponents"),
    Role.OPERATOR: ("Login", "ConfigureSelf", "ConfigureComponents"),
    Role.READ_ONLY: ("Login", "ConfigureSelf"),
    Role.DELEGATED: ("Login", "ConfigureSelf"),
}
"""What each role's ``Role`` resource lists (Redfish's standard privileges it amounts to)."""


def redfish_role(host_roles: set[str]) -> Role:
    """The strongest Redfish role among the viridian roles granted on the host."""
    for role, viridian in VIRIDIAN_ROLE.items():
        if viridian in host_roles:
            return role
    return Role.DELEGATED


def assignable(value: object) -> Role | None:
    """The Redfish role a client may give an account, or None (not one of
    :data:`ASSIGNABLE`)."""
    return next((r for r in VIRIDIAN_ROLE if r.value == value), None)


_SYSTEM = re.compile(rf"^{re.escape(REDFISH_ROOT)}/Systems/(?P<sid>[^/]+)(?P<rest>/.*)?$")
_START = ("On", "Resume")
_CAPABILITIES = f"{REDFISH_ROOT}/Systems/Capabilities"
_SELF_READ = ("", "/SessionService", "/SessionService/Sessions", "/AccountService",
              "/AccountService/Accounts", "/AccountService/Roles", "/TaskService",
              "/EventService", "/Systems")


def system_of(path: str) -> str | None:
    """The system (VM id) a path below ``/redfish/v1/Systems/{id}`` is about (not the
    collection's ``Capabilities`` object)."""
    found = _SYSTEM.match(path)
    return found.group("sid") if found and path != _CAPABILITIES else None


def operation_for(method: str, path: str, body: dict[str, Any], user: str) -> str:
    """The viridian operation (:mod:`viridian.access.operations`) ``method`` on ``path``
    needs from ``user``; the target is the VM of :func:`system_of`, else the host.

    Lists anyone may ask for (systems, accounts, sessions) answer ``access.self`` and are
    filtered to what the caller may see; one's own account and sessions need only
    ``access.self`` (handlers check whose they are)."""
    read = method in ("GET", "HEAD")
    rest = path.removeprefix(REDFISH_ROOT)
    found = _SYSTEM.match(path)
    if path == _CAPABILITIES:
        return SELF if read else "vm.create"
    if found:
        if read:
            return "vm.read"
        if found.group("rest") == "/Actions/ComputerSystem.Reset":
            return "vm.start" if body.get("ResetType") in _START else "vm.stop"
        return "vm.configure"
    if rest == "/Systems" and not read:
        return "vm.create"
    if (read and rest in _SELF_READ) or rest.startswith("/AccountService/Roles/"):
        return SELF
    if rest.startswith("/SessionService/Sessions"):
        return SELF
    if rest.startswith("/AccountService/Accounts/"):
        own = rest.removeprefix("/AccountService/Accounts/") == user
        return SELF if own and (read or (method == "PATCH" and set(body) <= {
            "Password", "@odata.etag"})) else "access.manage"
    if rest.startswith("/AccountService"):
        return "access.manage"
    if rest.startswith(("/TaskService/Tasks", "/TaskService/TaskMonitors")):
        return "job.read"
    if rest.startswith("/EventService"):
        return "host.read" if read else "host.manage"
    return "host.read" if read else "host.manage"
