"""VM ownership in etcd (docs/architecture.md, "Failover cluster"): the key
``/viridian/<cluster>/owners/<vm id>`` holds the owner host's name and is bound to that
host's lease, so it vanishes when the lease expires. It is changed only in transactions:
a claim succeeds only while nobody owns the VM; a release deletes the key only while this
host's lease still holds it.
"""

from __future__ import annotations

from viridian.cluster.etcd import Compare, Etcd, Op
from viridian.cluster.model import ClusterVM, HostRecord

__all__ = ["claim", "owner_key", "read_view", "release"]


def _root(cluster: str) -> str:
    return f"/viridian/{cluster}/"


def owner_key(cluster: str, vm_id: str) -> str:
    return f"{_root(cluster)}owners/{vm_id}"


def claim(etcd: Etcd, cluster: str, vm_id: str, host: str, lease: int) -> bool:
    """Take ownership of ``vm_id`` for ``host`` under ``lease``; False when owned."""
    key = owner_key(cluster, vm_id)
    return etcd.txn([Compare(key, "CREATE", 0)], [Op("put", key, host, lease)]).succeeded


def release(etcd: Etcd, cluster: str, vm_id: str, lease: int) -> bool:
    """Let go of ``vm_id``; False (nothing changed) unless ``lease`` holds it."""
    key = owner_key(cluster, vm_id)
    return etcd.txn([Compare(key, "LEASE", lease)], [Op("delete", key)]).succeeded


def read_view(etcd: Etcd, cluster: str) -> tuple[list[ClusterVM], list[HostRecord]]:
    """The VM records with their owners and the live host records, from one read."""
    _, kvs = etcd.get_prefix(_root(cluster))
    owners = {kv.key.rsplit("/", 1)[1]: kv for kv in kvs if "/owners/" in kv.key}
    vms = []
    for kv in kvs:
        if "/vms/" in kv.key:
            owner = owners.get(kv.key.rsplit("/", 1)[1])
            vms.append(ClusterVM.from_json(kv.value, owner.value if owner else None,
                                           owner.lease if owner else 0))
    hosts = [HostRecord.from_json(kv.value) for kv in kvs if "/hosts/" in kv.key]
    return vms, hosts
