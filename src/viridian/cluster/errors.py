"""Errors of the failover cluster (docs/architecture.md, "Failover cluster").

Both derive from the one error root (:mod:`viridian.errors`), so the API and the CLI
translate them like every other refusal.
"""

from __future__ import annotations

from viridian.errors import Conflict, HostError


class ClusterUnavailable(HostError):
    """No etcd endpoint answered in time (every endpoint was tried in turn)."""

    http_status = 503
    code = "cluster_unavailable"


class ClusterConflict(Conflict):
    """A cluster request that the cluster's current state does not allow (a host already
    a member, a VM owned by another host); nothing was changed."""

    code = "cluster_conflict"
