"""The authorization decision (AzMan's AccessCheck), pure: roles + grants → allowed?

A principal may perform an operation on a target when

* it is the bootstrap admin token, or the operation is ``access.self``; or
* the target is a VM it owns and :data:`~viridian.access.roles.OWNER_ROLE` has the
  operation; or
* the target is a job it submitted and the operation is in :data:`SUBMITTER_OPERATIONS`
  (reading and cancelling it: you always see your own jobs); or
* a grant to the user or to one of its ``@groups`` names a role with the operation on a
  scope that covers the target (:func:`~viridian.access.scopes.scope_covers`);

and, for an API token with a role of its own, that role has the operation too (a token
never has more rights than its user). Grants are indexed by subject, so a decision costs
the principal's own grants, not all of them (``bench/bench_access.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from viridian.access.operations import SELF
from viridian.access.principal import Principal
from viridian.access.roles import OWNER_ROLE, Role
from viridian.access.scopes import HOST, Target, scope_covers

__all__ = ["SUBMITTER_OPERATIONS", "Grant", "Policy"]

SUBMITTER_OPERATIONS = frozenset({"job.read", "job.cancel"})
"""What the submitter of a job may do to it without a grant."""


@dataclass(frozen=True)
class Grant:
    id: int
    role: str
    subject: str
    """A user name, or ``@group``."""
    scope: str

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "role": self.role, "to": self.subject, "on": self.scope}


class Policy:
    """An immutable snapshot of roles and grants that answers :meth:`allows`."""

    def __init__(self, roles: Mapping[str, Role], grants: Iterable[Grant]) -> None:
        self.roles = dict(roles)
        self.grants = tuple(grants)
        self._by_subject: dict[str, list[tuple[frozenset[str], str]]] = {}
        for grant in self.grants:
            role = self.roles.get(grant.role)
            if role is not None:
                self._by_subject.setdefault(grant.subject, []).append(
                    (role.operations, grant.scope))

    def allows(self, principal: Principal, operation: str, target: Target) -> bool:
        """Whether ``principal`` may perform ``operation`` on ``target`` (module docstring)."""
        if principal.bootstrap or operation == SELF:
            return True
        if principal.token_role is not None:
            role = self.roles.get(principal.token_role)
            if role is None or operation not in role.operations:
                return False
        return self._granted(principal, operation, target)

    def _granted(self, principal: Principal, operation: str, target: Target) -> bool:
        if target.owner is not None and target.owner == principal.user \
                and operation in OWNER_ROLE.operations:
            return True
        if target.submitted_by is not None and target.submitted_by == principal.user \
                and operation in SUBMITTER_OPERATIONS:
            return True
        for subject in principal.subjects():
            for operations, scope in self._by_subject.get(subject, ()):
                if operation in operations and scope_covers(scope, target):
                    return True
        return False

    def allows_somewhere(self, principal: Principal, operation: str) -> bool:
        """Whether ``principal`` has ``operation`` on some scope (routes whose target is
        in the request body authorize it themselves; the gate asks only this)."""
        if principal.bootstrap or operation == SELF:
            return True
        if principal.token_role is not None:
            role = self.roles.get(principal.token_role)
            if role is None or operation not in role.operations:
                return False
        return any(operation in ops for subject in principal.subjects()
                   for ops, _ in self._by_subject.get(subject, ()))

    def sees_every_vm(self, principal: Principal) -> bool:
        """Whether ``vm.read`` reaches every VM (a host-wide grant): lists need no filter."""
        if principal.bootstrap:
            return True
        if principal.token_role is not None:
            role = self.roles.get(principal.token_role)
            if role is None or "vm.read" not in role.operations:
                return False
        return any("vm.read" in ops and scope == HOST
                   for subject in principal.subjects()
                   for ops, scope in self._by_subject.get(subject, ()))
