"""Scopes a grant applies to: ``host`` (everything), ``vm:NAME`` (one VM), ``tag:TAG``
(every VM carrying the tag). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["HOST", "Target", "parse_scope", "scope_covers"]

HOST = "host"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,99}$")


@dataclass(frozen=True)
class Target:
    """What a request acts on: the host (``vm`` None) or one VM (name, id, tags, owner)."""

    vm: str | None = None
    vm_id: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)
    owner: str | None = None

    def label(self) -> str:
        return f"vm:{self.vm}" if self.vm is not None else HOST


def parse_scope(text: str) -> str:
    """The canonical spelling of a scope.

    :raises ValueError: not ``host``, ``vm:NAME`` or ``tag:TAG`` (the message says so).
    """
    text = text.strip()
    if text == HOST:
        return text
    kind, _, name = text.partition(":")
    if kind in ("vm", "tag") and _NAME.match(name):
        return f"{kind}:{name}"
    raise ValueError(f"invalid scope {text!r}; allowed: host, vm:NAME, tag:TAG")


def scope_covers(scope: str, target: Target) -> bool:
    """Whether a grant on ``scope`` reaches ``target`` (a host grant reaches every VM)."""
    if scope == HOST:
        return True
    if target.vm is None:
        return False
    kind, _, name = scope.partition(":")
    if kind == "vm":
        return name in (target.vm, target.vm_id)
    return kind == "tag" and name in target.tags
