"""Operations (AzMan's "operations"): the verbs a role grants (docs/architecture.md, "Access").

Every API route needs exactly one operation (:mod:`viridian.access.route_table`). Names
are ``area.verb``; a role may name a whole area with ``area.*`` or everything with ``*``.
``access.self`` (who am I, my own tokens, log out, the console's pages) is granted to every
authenticated principal.
"""

from __future__ import annotations

__all__ = ["OPERATIONS", "SELF", "expand", "operation_matches"]

SELF = "access.self"

OPERATIONS: dict[str, str] = {
    "vm.read": "see a VM: its settings, state, checkpoints, counters, screenshot",
    "vm.start": "start, resume a VM",
    "vm.stop": "turn off, shut down, save, pause, reset a VM",
    "vm.configure": "change a VM's settings and devices, rename it",
    "vm.connect": "the VM's screen and serial console",
    "vm.checkpoint": "take, apply, rename, delete checkpoints",
    "vm.guest": "guest services: run commands, copy files, KVP",
    "vm.create": "create or import a VM",
    "vm.delete": "remove a VM",
    "switch.read": "see virtual switches and the network",
    "switch.manage": "create, remove, reconcile virtual switches",
    "disk.manage": "the disk wizard: create, convert, compact, expand, merge disks",
    "library.read": "see the library (media, templates) and read its items",
    "library.manage": "upload, change, remove library items and templates",
    "template.deploy": "provision VMs from a template (self-service; granted on "
                       "template:NAME, or the host for every template)",
    "host.read": "host facts, counters, best-practice analysis, jobs of everyone",
    "host.manage": "host-wide actions (host shutdown, counter sampling)",
    "job.read": "see a job",
    "job.cancel": "cancel a job",
    "backup.read": "see a VM's backup (freeze) state",
    "backup.manage": "freeze and thaw a VM's file systems for a backup",
    "cluster.read": "see the cluster",
    "cluster.manage": "change the cluster",
    "access.manage": "users, groups, realms, roles, grants, tokens of others, quotas, audit",
    SELF: "who am I, my own tokens and session, the console's pages",
}
"""Every operation with what it allows (``viridian role show`` prints these)."""


def operation_matches(pattern: str, operation: str) -> bool:
    """Whether a role's entry ``pattern`` (``vm.start``, ``vm.*``, ``*``) covers ``operation``."""
    if pattern in ("*", operation):
        return True
    return pattern.endswith(".*") and operation.startswith(pattern[:-1])


def expand(patterns: frozenset[str] | set[str] | tuple[str, ...]) -> frozenset[str]:
    """The operations of :data:`OPERATIONS` that ``patterns`` cover.

    :raises ValueError: a pattern that covers no known operation (the message names them).
    """
    covered: set[str] = set()
    for pattern in patterns:
        found = {op for op in OPERATIONS if operation_matches(pattern, op)}
        if not found:
            raise ValueError(f"unknown operation {pattern!r}; known: {', '.join(OPERATIONS)} "
                             "(or AREA.* / *)")
        covered |= found
    return frozenset(covered)
