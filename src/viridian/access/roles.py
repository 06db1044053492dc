"""Roles: named sets of operations (AzMan's roles; docs/architecture.md, "Access").

The built-in roles cannot be changed or removed; admins add their own with
``viridian role new``. :data:`OWNER_ROLE` is what the owner of a VM (who created it)
may do to it without any grant (self-service). ``Self-service user`` granted on
``template:NAME`` lets a user see that template and provision VMs from it (it then owns
them: the Owner role); its ``vm.read`` and ``job.read`` reach no VM or job on a template
scope (they matter only when it is granted on the host, where it reaches every template
and lets the user see every VM).
"""

from __future__ import annotations

from dataclasses import dataclass

from viridian.access.operations import SELF, expand

__all__ = ["BUILTIN_ROLES", "OWNER_ROLE", "Role"]


@dataclass(frozen=True)
class Role:
    name: str
    operations: frozenset[str]
    builtin: bool = False
    description: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "operations": sorted(self.operations),
                "builtin": self.builtin, "description": self.description}


def _builtin(name: str, description: str, *patterns: str) -> Role:
    return Role(name, expand({SELF, *patterns}), True, description)


_VIEWER = ("vm.read", "switch.read", "host.read", "job.read", "backup.read", "cluster.read",
           "library.read")
_VM_USER = ("vm.read", "vm.start", "vm.stop", "vm.connect", "job.read")

BUILTIN_ROLES: dict[str, Role] = {r.name: r for r in (
    _builtin("Administrator", "everything, on its scope", "*"),
    _builtin("Operator", "run, configure and checkpoint VMs; see the host",
             *_VIEWER, "vm.start", "vm.stop", "vm.configure", "vm.connect", "vm.checkpoint",
             "vm.guest", "backup.manage", "job.cancel"),
    _builtin("Viewer", "see, change nothing", *_VIEWER),
    _builtin("VM User", "start, stop and connect to VMs", *_VM_USER),
    _builtin("Self-service user", "provision VMs from the granted templates (grant on "
             "template:NAME); owns and manages the VMs it makes, within its quota",
             "template.deploy", "library.read", "job.read", "vm.read"),
)}

OWNER_ROLE = _builtin("Owner", "what a VM's owner may do to it",
                      "vm.read", "vm.start", "vm.stop", "vm.configure", "vm.connect",
                      "vm.checkpoint", "vm.guest", "vm.delete", "backup.*", "job.read")
