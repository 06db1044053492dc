"""Redfish roles and the privilege each request needs (DSP0266 §13.2, the Redfish
privilege registry's defaults, reduced to what this service serves)."""

from __future__ import annotations

from enum import Enum


class Role(Enum):
    ADMINISTRATOR = "Administrator"
    OPERATOR = "Operator"
    READ_ONLY = "ReadOnly"


ROLE_PRIVILEGES: dict[Role, tuple[str, ...]] = {
    Role.ADMINISTRATOR: ("Login", "ConfigureManager", "ConfigureUsers", "ConfigureSelf",
                         "ConfigureComponents"),
    Role.OPERATOR: ("Login", "ConfigureSelf", "ConfigureComponents"),
    Role.READ_ONLY: ("Login", "ConfigureSelf"),
}


def required_privilege(method: str, path: str) -> str:
    """The privilege ``method`` on ``path`` (below ``/redfish/v1``) needs: reading needs
    Login; accounts ConfigureUsers; the manager ConfigureManager; ending a session
    ConfigureSelf (own session checked by the caller); everything else (systems, media,
    tasks, subscriptions) ConfigureComponents."""
    if method in ("GET", "HEAD"):
        return "Login"
    if "/AccountService" in path:
        return "ConfigureUsers"
    if "/Managers" in path:
        return "ConfigureManager"
    if "/SessionService/Sessions" in path:
        return "ConfigureSelf"
    return "ConfigureComponents"


def allows(role: Role, privilege: str) -> bool:
    return privilege in ROLE_PRIVILEGES[role]
