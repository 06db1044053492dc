"""Host groups (VMM's tree of hosts; docs/architecture.md, "Access"): ``All Hosts`` and
groups under it (``All Hosts/Prod/Rack1``); every host is in exactly one group (``All
Hosts`` until it is added to another). Grants may be scoped to a group
(``hostgroup:PATH``: the group and every group under it) and provisioning places VMs
only on hosts of the requested group.

A user's quota may be scoped to a group too (``group_quotas``): it limits what the user's
VMs on the hosts under that group add up to. Kept in the access store
(``<data>/access.sqlite``, tables ``host_groups``, ``group_hosts``, ``group_quotas``)
because grants and quotas name them. :func:`normalise` and :func:`within` are pure;
:class:`HostGroups` is the SQL shell.
"""

from __future__ import annotations

import re
import socket
from typing import Any

from viridian.access.store import AccessStore
from viridian.errors import BadRequest, Conflict, NotFound

__all__ = ["ROOT", "HostGroups", "normalise", "within"]

ROOT = "All Hosts"
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
SCHEMA = """
CREATE TABLE IF NOT EXISTS host_groups (path TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS group_hosts (host TEXT PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS group_quotas (user TEXT NOT NULL, path TEXT NOT NULL, vms INTEGER,
    memory_mb INTEGER, processors INTEGER, disk_mb INTEGER, PRIMARY KEY (user, path));
"""
QUOTA_KEYS = ("vms", "memory_mb", "processors", "disk_mb")


def normalise(path: str) -> str:
    """The canonical path of a group: parts joined by ``/`` under ``All Hosts``
    (``Prod/Rack1`` and ``All Hosts/Prod/Rack1`` are the same group).

    :raises ValueError: an empty part, or a part not 1-64 letters, digits, ' ', '.', '_',
        '-' starting with a letter or digit (the message says which).
    """
    parts = [p.strip() for p in path.strip().strip("/").split("/")]
    if parts and parts[0] == ROOT:
        parts = parts[1:]
    for part in parts:
        if not _PART.match(part) or part == ROOT:
            raise ValueError(f"invalid host group path {path!r}: each part 1-64 letters, "
                             "digits, ' ', '.', '_', '-' (e.g. 'All Hosts/Prod/Rack1')")
    return "/".join([ROOT, *parts])


def within(group: str, ancestor: str) -> bool:
    """Whether ``group`` is ``ancestor`` or under it (both canonical)."""
    return group == ancestor or group.startswith(ancestor + "/")


def check_host(name: str) -> str:
    if not _HOST.match(name):
        raise BadRequest(f"invalid host name {name!r}: 1-63 letters, digits, '.', '_', '-'; "
                         "nothing was changed", host=name)
    return name


class HostGroups:
    """The tree and the hosts' places in it (thread-safe through the store's lock)."""

    def __init__(self, store: AccessStore) -> None:
        self.store = store
        with store.transaction() as db:
            for statement in SCHEMA.strip().split(";"):
                if statement.strip():
                    db.execute(statement)

    @staticmethod
    def path(text: str) -> str:
        try:
            return normalise(text)
        except ValueError as err:
            raise BadRequest(f"{err}; nothing was changed", group=text) from err

    def paths(self) -> list[str]:
        return [ROOT, *(r[0] for r in self.store.rows("SELECT path FROM host_groups "
                                                      "ORDER BY path"))]

    def hosts(self) -> dict[str, str]:
        """Host → its group (hosts never added are in ``All Hosts`` and not listed)."""
        return dict(self.store.rows("SELECT host, path FROM group_hosts ORDER BY host"))

    def group_of(self, host: str) -> str:
        """The group of ``host`` (``localhost``, this host's name outside a cluster, is also
        found under the machine's host name)."""
        names = (host, socket.gethostname()) if host == "localhost" else (host,)
        for name in names:
            found = self.store.row("SELECT path FROM group_hosts WHERE host=?", (name,))
            if found:
                return str(found[0])
        return ROOT

    def show(self, text: str) -> dict[str, Any]:
        path = self.path(text)
        paths = self.paths()
        if path not in paths:
            raise NotFound(f"no host group {path!r}; groups: {', '.join(paths)}", group=path)
        hosts = self.hosts()
        return {"path": path, "parent": path.rpartition("/")[0] or None,
                "children": [p for p in paths if p.rpartition("/")[0] == path],
                "hosts": sorted(h for h, g in hosts.items() if g == path)}

    def listing(self) -> list[dict[str, Any]]:
        return [self.show(p) for p in self.paths()]

    def new(self, text: str) -> dict[str, Any]:
        """Add group ``text``; its parent must exist."""
        path = self.path(text)
        paths = self.paths()
        if path in paths:
            raise Conflict(f"host group {path!r} exists already; nothing was changed",
                           group=path)
        parent = path.rpartition("/")[0]
        if parent not in paths:
            raise NotFound(f"no parent group {parent!r} for {path!r}: make it first "
                           "('viridian hostgroup new'); nothing was changed", group=parent)
        self.store.write("INSERT INTO host_groups VALUES (?)", (path,))
        return self.show(path)

    def remove(self, text: str, grants: list[str]) -> dict[str, Any]:
        """Remove an empty group no grant names (``grants``: the scopes granted)."""
        shown = self.show(text)
        path = shown["path"]
        if path == ROOT:
            raise Conflict(f"{ROOT!r} is the root of the tree and cannot be removed")
        quotas = self.store.rows("SELECT user FROM group_quotas WHERE path=?", (path,))
        busy = [*shown["children"], *(f"host {h}" for h in shown["hosts"]),
                *(f"a grant on {s}" for s in grants if s == f"hostgroup:{path}"),
                *(f"{u}'s quota" for (u,) in quotas)]
        if busy:
            raise Conflict(f"host group {path!r} is in use: {', '.join(busy)}; move or "
                           "remove them first; nothing was changed", group=path, uses=busy)
        self.store.write("DELETE FROM host_groups WHERE path=?", (path,))
        return {"removed": path}

    def add_host(self, host: str, text: str) -> dict[str, Any]:
        """Put ``host`` into group ``text`` (out of the one it was in)."""
        check_host(host)
        path = self.show(text)["path"]
        if path == ROOT:
            self.store.write("DELETE FROM group_hosts WHERE host=?", (host,))
        else:
            self.store.write("INSERT OR REPLACE INTO group_hosts VALUES (?,?)", (host, path))
        return {"host": host, "group": path}

    def quotas(self, user: str) -> list[dict[str, Any]]:
        """``[{"group", "limits"}]``: ``user``'s quotas scoped to host groups."""
        rows = self.store.rows("SELECT path, vms, memory_mb, processors, disk_mb FROM "
                               "group_quotas WHERE user=? ORDER BY path", (user,))
        return [{"group": r[0], "limits": dict(zip(QUOTA_KEYS, r[1:], strict=True))}
                for r in rows]

    def set_quota(self, user: str, text: str, limits: dict[str, int | None]) -> dict[str, Any]:
        """Set ``user``'s limits in group ``text`` (all None: the quota is removed)."""
        path = self.show(text)["path"]
        bad = [k for k, v in limits.items() if k not in QUOTA_KEYS or (v is not None and v < 0)]
        if bad:
            raise BadRequest(f"quota {', '.join(bad)}: allowed {', '.join(QUOTA_KEYS)}, 0 or "
                             "more; nothing was changed")
        if all(limits.get(k) is None for k in QUOTA_KEYS):
            self.store.write("DELETE FROM group_quotas WHERE user=? AND path=?", (user, path))
        else:
            self.store.write("INSERT OR REPLACE INTO group_quotas VALUES (?,?,?,?,?,?)",
                             (user, path, *(limits.get(k) for k in QUOTA_KEYS)))
        return {"user": user, "quotas": self.quotas(user)}
