"""The cluster's typed records (docs/architecture.md, "Failover cluster"): hosts (with
their site), the HA policy of a VM (Hyper-V's priority, preferred owners,
AntiAffinityClassNames, failback, preferred site) and a VM as the cluster sees it. Pure:
no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from viridian.errors import InvalidSetting

__all__ = ["ClusterVM", "HAPolicy", "HostRecord", "HostState", "Priority"]


class Priority(Enum):
    """Hyper-V's failover priority and its WMI value; ``none`` is "No Auto Start": the VM
    is not restarted by the cluster when its host fails."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NONE = "none"

    @property
    def rank(self) -> int:
        return {"high": 3000, "medium": 2000, "low": 1000, "none": 0}[self.value]


class HostState(Enum):
    """A member host as ``cluster show`` names it: Up, Down (lease gone) or Paused
    (drained: runs what it has, receives no VMs)."""

    UP = "Up"
    DOWN = "Down"
    PAUSED = "Paused"


def _names(value: Any, setting: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v.strip()
                                                      for v in value):
        raise InvalidSetting(setting, value, "a list of names")
    return tuple(v.strip() for v in value)


@dataclass(frozen=True)
class HAPolicy:
    """How the cluster treats a VM when its host fails. ``ha`` off: the VM is not
    restarted elsewhere (nor fenced)."""

    ha: bool = False
    priority: Priority = Priority.MEDIUM
    preferred_hosts: tuple[str, ...] = ()
    anti_affinity: tuple[str, ...] = ()
    failback: bool = False
    preferred_site: str = ""
    failback_window: tuple[int, int] | None = None  # (start, end) local hours; None: any

    @property
    def restarts(self) -> bool:
        """Whether the cluster restarts the VM on another host when its host fails."""
        return self.ha and self.priority is not Priority.NONE

    def to_dict(self) -> dict[str, Any]:
        return {"ha": self.ha, "priority": self.priority.value,
                "preferred_hosts": list(self.preferred_hosts),
                "anti_affinity": list(self.anti_affinity), "failback": self.failback,
                "preferred_site": self.preferred_site,
                "failback_window": list(self.failback_window) if self.failback_window
                else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: HAPolicy | None = None) -> HAPolicy:
        """``data`` (a full or partial policy, API shape) over ``base``; raises
        :class:`InvalidSetting` naming the field and the allowed values."""
        policy = base or cls()
        allowed = {"ha", "priority", "preferred_hosts", "anti_affinity", "failback",
                   "preferred_site", "failback_window"}
        for key in data:
            if key not in allowed:
                raise InvalidSetting(key, data[key], ", ".join(sorted(allowed)),
                                     "unknown HA setting")
        if "ha" in data:
            policy = replace(policy, ha=_flag(data["ha"], "ha"))
        if "failback" in data:
            policy = replace(policy, failback=_flag(data["failback"], "failback"))
        if "priority" in data:
            try:
                policy = replace(policy, priority=Priority(data["priority"]))
            except ValueError:
                raise InvalidSetting("priority", data["priority"],
                                     "high, medium, low, none") from None
        if "preferred_hosts" in data:
            policy = replace(policy, preferred_hosts=_names(data["preferred_hosts"],
                                                            "preferred_hosts"))
        if "anti_affinity" in data:
            policy = replace(policy, anti_affinity=_names(data["anti_affinity"],
                                                          "anti_affinity"))
        if "preferred_site" in data:
            site = data["preferred_site"]
            if not isinstance(site, str) or site != site.strip():
                raise InvalidSetting("preferred_site", site, "a site name, or \"\" for none")
            policy = replace(policy, preferred_site=site)
        if "failback_window" in data:
            policy = replace(policy, failback_window=_window(data["failback_window"]))
        return policy

    def may_fail_back(self, hour: int) -> bool:
        """Whether failback may happen at local ``hour`` (0-23)."""
        if self.failback_window is None:
            return True
        start, end = self.failback_window
        return start <= hour < end if start < end else hour >= start or hour < end


def _window(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 23
                       for h in value) or value[0] == value[1]):
        raise InvalidSetting("failback_window", value,
                             "[START, END] hours 0-23 that differ, or null")
    return int(value[0]), int(value[1])


def _flag(value: Any, setting: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("on", "off"):
        return bool(value == "on")
    raise InvalidSetting(setting, value, "true, false, on, off")


@dataclass(frozen=True)
class HostRecord:
    """A member host as it publishes itself under its lease. ``memory_free_mb`` is what
    the host's admission rules would still admit. The placement facts (docs/architecture.md,
    "Library and provisioning"): ``cpu_busy_pct`` over the last hour of counters (None:
    none kept yet), the data folder's storage, the virtual switches' names, the data
    disk's ``disk_busy_pct`` over the same hour (None: unknown)."""

    name: str
    state: HostState = HostState.UP
    memory_total_mb: int = 0
    memory_free_mb: int = 0
    running: tuple[str, ...] = ()
    site: str = ""
    api: str = ""
    cpu_busy_pct: float | None = None
    storage_total_bytes: int = 0
    storage_free_bytes: int = 0
    switches: tuple[str, ...] = ()
    disk_busy_pct: float | None = None
    certificate: str = ""
    """The PEM certificate the host's service presents on ``api`` (HTTPS), "" for plain
    HTTP: peers pin exactly it (etcd, which only members write, is the trust root)."""

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "state": self.state.value,
                           "memory_total_mb": self.memory_total_mb,
                           "memory_free_mb": self.memory_free_mb,
                           "running": list(self.running), "site": self.site, "api": self.api,
                           "cpu_busy_pct": self.cpu_busy_pct,
                           "storage_total_bytes": self.storage_total_bytes,
                           "storage_free_bytes": self.storage_free_bytes,
                           "switches": list(self.switches),
                           "disk_busy_pct": self.disk_busy_pct,
                           "certificate": self.certificate})

    @classmethod
    def from_json(cls, text: str) -> HostRecord:
        d = json.loads(text)
        return cls(name=d["name"], state=HostState(d.get("state", "Up")),
                   memory_total_mb=int(d.get("memory_total_mb", 0)),
                   memory_free_mb=int(d.get("memory_free_mb", 0)),
                   running=tuple(d.get("running", ())), site=d.get("site", ""),
                   api=d.get("api", ""),
                   cpu_busy_pct=None if d.get("cpu_busy_pct") is None
                   else float(d["cpu_busy_pct"]),
                   storage_total_bytes=int(d.get("storage_total_bytes", 0)),
                   storage_free_bytes=int(d.get("storage_free_bytes", 0)),
                   switches=tuple(d.get("switches", ())),
                   disk_busy_pct=None if d.get("disk_busy_pct") is None
                   else float(d["disk_busy_pct"]),
                   certificate=str(d.get("certificate") or ""))


@dataclass(frozen=True)
class ClusterVM:
    """A VM as the cluster knows it: its cluster-wide record (``desired``: whether the
    admin wants it running) and, read separately, its owner (the host whose lease holds
    the VM's ownership key; None when nobody owns it) and that lease: a host owns the VM
    only through the lease it holds now, never by its name alone (a host back from a
    crash, with a new lease, does not own what its old lease still holds)."""

    id: str
    name: str
    memory_mb: int
    policy: HAPolicy = field(default_factory=HAPolicy)
    desired_running: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)
    owner: str | None = None
    owner_lease: int = 0

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "name": self.name, "memory_mb": self.memory_mb,
                           "policy": self.policy.to_dict(),
                           "desired_running": self.desired_running,
                           "settings": dict(self.settings)})

    @classmethod
    def from_json(cls, text: str, owner: str | None = None, owner_lease: int = 0) -> ClusterVM:
        d = json.loads(text)
        return cls(id=d["id"], name=d["name"], memory_mb=int(d["memory_mb"]),
                   policy=HAPolicy.from_dict(d.get("policy", {})),
                   desired_running=bool(d.get("desired_running", False)),
                   settings=d.get("settings", {}), owner=owner, owner_lease=owner_lease)
