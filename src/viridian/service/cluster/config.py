"""This host's cluster membership, kept in the data folder (``<data>/cluster/``;
docs/architecture.md, "Failover cluster").

``config.json`` names the cluster, the etcd endpoints, this host's name and site, the
lease TTL, the cluster's shared folders (where HA VMs' folders and disks must be) and
which site each etcd member is in; ``lease`` holds the id of the host's current etcd
lease so a restarted service keeps owning its running VMs while that lease lives.
Written atomically.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from viridian.cluster.etcd import parse_endpoints
from viridian.cluster.fencing import FenceRule
from viridian.errors import BadRequest, InvalidSetting

__all__ = ["ClusterConfig", "ClusterFolder"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
NAME_ALLOWED = "1-63 letters, digits, '.', '_', '-' (starting with a letter or digit)"
TTL_RANGE = (5, 300)


def check_name(setting: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidSetting(setting, value, NAME_ALLOWED)
    return value


@dataclass(frozen=True)
class ClusterConfig:
    """What ``cluster create`` / ``cluster join`` recorded for this host."""

    name: str
    endpoints: tuple[str, ...]
    host: str
    site: str = ""
    lease_ttl: int = 10
    watchdog: bool = False  # feed /dev/watchdog when one exists (never by default)
    shared: tuple[str, ...] = ()  # the cluster's shared folders (absolute paths)
    etcd_sites: tuple[tuple[str, str], ...] = ()  # (endpoint, site) of etcd members

    def __post_init__(self) -> None:
        check_name("name", self.name)
        check_name("host", self.host)
        if self.site:
            check_name("site", self.site)
        if not TTL_RANGE[0] <= self.lease_ttl <= TTL_RANGE[1]:
            raise InvalidSetting("lease_ttl", self.lease_ttl,
                                 f"{TTL_RANGE[0]}..{TTL_RANGE[1]} seconds")
        if not self.endpoints:
            raise InvalidSetting("etcd", "", "http://HOST:PORT[,http://HOST:PORT...]")
        FenceRule.for_ttl(self.lease_ttl)  # a TTL the timing rule accepts
        for folder in self.shared:
            if not folder.startswith("/") or "/../" in f"{folder}/":
                raise InvalidSetting("shared", folder, "absolute folder paths")
        for endpoint, site in self.etcd_sites:
            if endpoint not in self.endpoints:
                raise InvalidSetting("etcd_sites", endpoint,
                                     "one of the etcd endpoints: " + ", ".join(self.endpoints))
            check_name("etcd_sites", site)

    @classmethod
    def parse(cls, name: str, etcd: str, host: str, site: str = "",
              lease_ttl: int = 10, watchdog: bool = False, shared: tuple[str, ...] = (),
              etcd_sites: Mapping[str, str] | None = None) -> ClusterConfig:
        endpoints = parse_endpoints(etcd)
        sites = {url.strip().rstrip("/"): s for url, s in (etcd_sites or {}).items()}
        return cls(name, endpoints, host, site, lease_ttl, watchdog,
                   tuple(str(Path(f)) if f.startswith("/") else f for f in shared),
                   tuple(sorted(sites.items())))

    def etcd_site(self, endpoint: str) -> str:
        """The site of the etcd member at ``endpoint`` ("" when not named)."""
        return dict(self.etcd_sites).get(endpoint, "")

    def under_shared(self, path: str) -> bool:
        """Whether ``path`` is inside one of the cluster's shared folders."""
        resolved = Path(os.path.normpath(path))
        return any(resolved.is_relative_to(folder) for folder in self.shared)

    @property
    def rule(self) -> FenceRule:
        return FenceRule.for_ttl(self.lease_ttl)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["endpoints"] = list(self.endpoints)
        d["shared"] = list(self.shared)
        d["etcd_sites"] = dict(self.etcd_sites)
        return d


class ClusterFolder:
    """``<data>/cluster/``: the config, the lease id, the fence guard's files."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "cluster"

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def lease_file(self) -> Path:
        return self.path / "lease"

    @property
    def guard_file(self) -> Path:
        """What the fence guard enforces (deadline, HA VMs' runtime folders)."""
        return self.path / "fence.json"

    @property
    def guard_lock(self) -> Path:
        return self.path / "guard.lock"

    @property
    def handoff(self) -> Path:
        """``handoff/<vm id>``: why this host ended an HA VM's QEMU on purpose
        (``fenced`` or ``drain``), read by the exit hook."""
        return self.path / "handoff"

    def load(self) -> ClusterConfig | None:
        try:
            d = json.loads(self.config_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise BadRequest(f"cannot read {self.config_file}: {err}") from err
        return ClusterConfig(d["name"], tuple(d["endpoints"]), d["host"], d.get("site", ""),
                             int(d.get("lease_ttl", 10)), bool(d.get("watchdog", False)),
                             tuple(d.get("shared", ())),
                             tuple(sorted(dict(d.get("etcd_sites", {})).items())))

    def save(self, config: ClusterConfig) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.handoff.mkdir(mode=0o700, exist_ok=True)
        write_atomically(self.config_file, json.dumps(config.to_dict(), indent=2))

    def forget(self) -> None:
        for file in (self.config_file, self.lease_file, self.guard_file):
            file.unlink(missing_ok=True)

    def saved_lease(self) -> int:
        try:
            return int(self.lease_file.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def save_lease(self, lease: int) -> None:
        write_atomically(self.lease_file, str(lease))

    def mark(self, vm_id: str, why: str) -> None:
        self.handoff.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.handoff / vm_id).write_text(why)

    def take_mark(self, vm_id: str) -> str | None:
        """The reason this host ended ``vm_id`` on purpose (the mark is removed)."""
        file = self.handoff / vm_id
        try:
            why = file.read_text()
        except FileNotFoundError:
            return None
        file.unlink(missing_ok=True)
        return why


def write_atomically(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)
