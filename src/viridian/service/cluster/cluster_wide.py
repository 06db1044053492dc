"""The cluster-wide settings a host takes when it joins (docs/architecture.md, "Failover
cluster: sites and shared storage"): the cluster's shared folders (where an HA VM's
folder and disks must be) and the site of each etcd member. ``cluster create`` records
them in the cluster's ``created`` key; ``cluster join`` without them takes them from
there, so every host checks HA VMs against the same folders.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from viridian.errors import InvalidSetting
from viridian.service.cluster.config import ClusterConfig

__all__ = ["inherit", "stamp"]


def stamp(config: ClusterConfig) -> str:
    """The ``created`` key's value for a cluster made with ``config``."""
    return json.dumps({"by": config.host, "at": time.time(), "shared": list(config.shared),
                       "etcd_sites": dict(config.etcd_sites)})


def inherit(config: ClusterConfig, created: str | None) -> ClusterConfig:
    """``config`` completed with the cluster's shared folders and etcd sites from the
    ``created`` value when the join named none; each shared folder must be a folder on
    this host (else :class:`InvalidSetting` naming it)."""
    try:
        recorded = json.loads(created) if created else {}
    except ValueError:
        recorded = {}
    if not config.shared and recorded.get("shared"):
        config = replace(config, shared=tuple(recorded["shared"]))
    if not config.etcd_sites and recorded.get("etcd_sites"):
        sites = {url: site for url, site in dict(recorded["etcd_sites"]).items()
                 if url in config.endpoints}
        config = replace(config, etcd_sites=tuple(sorted(sites.items())))
    for folder in config.shared:
        if not Path(folder).is_dir():
            raise InvalidSetting("shared", folder, "folders that exist on this host",
                                 "not a folder on this host")
    return config
