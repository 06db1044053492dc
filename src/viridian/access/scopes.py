"""Scopes a grant applies to: ``host`` (everything), ``vm:NAME`` (one VM), ``tag:TAG``
(every VM carrying the tag), ``template:NAME`` (one template of the library: self-service
provisioning, docs/architecture.md "Access"), ``hostgroup:PATH`` (provisioning to the hosts
of a host group and the groups under it: :mod:`viridian.access.hostgroups`). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from viridian.access.hostgroups import normalise, within

__all__ = ["HOST", "Target", "parse_scope", "scope_covers"]

HOST = "host"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,99}$")


@dataclass(frozen=True)
class Target:
    """What a request acts on: the host (``vm`` and ``template`` None), one VM (name, id,
    tags, owner) or one template (``template``; ``host_group``: the group of the host it
    would be deployed to). A job is the host with ``submitted_by``: who submitted it
    (None: unknown)."""

    vm: str | None = None
    vm_id: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)
    owner: str | None = None
    template: str | None = None
    host_group: str | None = None
    submitted_by: str | None = None

    def label(self) -> str:
        if self.template is not None:
            where = f" in host group {self.host_group}" if self.host_group else ""
            return f"template:{self.template}{where}"
        return f"vm:{self.vm}" if self.vm is not None else HOST


def parse_scope(text: str) -> str:
    """The canonical spelling of a scope.

    :raises ValueError: not ``host``, ``vm:NAME``, ``tag:TAG``, ``template:NAME`` or
        ``hostgroup:PATH`` (the message says so).
    """
    text = text.strip()
    if text == HOST:
        return text
    kind, _, name = text.partition(":")
    if kind == "hostgroup":
        return f"hostgroup:{normalise(name)}"
    if kind in ("vm", "tag", "template") and _NAME.match(name):
        return f"{kind}:{name}"
    raise ValueError(f"invalid scope {text!r}; allowed: host, vm:NAME, tag:TAG, "
                     "template:NAME, hostgroup:PATH")


def scope_covers(scope: str, target: Target) -> bool:
    """Whether a grant on ``scope`` reaches ``target`` (a host grant reaches every VM)."""
    if scope == HOST:
        return True
    kind, _, name = scope.partition(":")
    if kind == "template":
        return target.template is not None and name == target.template
    if kind == "hostgroup":
        return target.host_group is not None and within(target.host_group, name)
    if target.vm is None:
        return False
    if kind == "vm":
        return name in (target.vm, target.vm_id)
    return kind == "tag" and name in target.tags
