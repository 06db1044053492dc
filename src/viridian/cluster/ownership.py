"""VM ownership in etcd (docs/architecture.md, "Failover cluster").

Keys under ``/viridian/<cluster>/``:

- ``hosts/<host>``   the host's :class:`HostRecord`, bound to its lease (gone with it);
- ``vms/<vm id>``    the HA VM's :class:`ClusterVM` record (settings, folder on shared
  storage, desired state), no lease: it outlives every host;
- ``owners/<vm id>`` the owner host's name, bound to the owner's lease, so it vanishes
  when that lease expires;
- ``paused/<host>``  present while the host is drained (no lease: survives restarts).

An owner key is changed only in transactions: a claim succeeds only while nobody owns
the VM; a release deletes the key only while this host's lease still holds it; a
hand-over (:func:`hand_over`, for migrations) moves it from one lease to another in one
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from viridian.cluster.etcd import Compare, Etcd, KeyValue, Op
from viridian.cluster.model import ClusterVM, HostRecord

__all__ = [
    "ClusterView",
    "claim",
    "hand_over",
    "host_key",
    "member_key",
    "owner",
    "owner_key",
    "paused_key",
    "read_cluster",
    "read_view",
    "release",
    "root",
    "stop_and_release",
    "vm_key",
]


def root(cluster: str) -> str:
    return f"/viridian/{cluster}/"


_root = root


def owner_key(cluster: str, vm_id: str) -> str:
    return f"{_root(cluster)}owners/{vm_id}"


def vm_key(cluster: str, vm_id: str) -> str:
    return f"{_root(cluster)}vms/{vm_id}"


def host_key(cluster: str, host: str) -> str:
    return f"{_root(cluster)}hosts/{host}"


def member_key(cluster: str, host: str) -> str:
    """``members/<host>``: the host joined (no lease: a member that is not Up is Down)."""
    return f"{_root(cluster)}members/{host}"


def paused_key(cluster: str, host: str) -> str:
    return f"{_root(cluster)}paused/{host}"


def owner(etcd: Etcd, cluster: str, vm_id: str) -> KeyValue | None:
    """The owner key of ``vm_id`` (value: host name, lease: the owner's lease) or None."""
    return etcd.get(owner_key(cluster, vm_id))


def claim(etcd: Etcd, cluster: str, vm_id: str, host: str, lease: int) -> bool:
    """Take ownership of ``vm_id`` for ``host`` under ``lease``; False when owned."""
    key = owner_key(cluster, vm_id)
    return etcd.txn([Compare(key, "CREATE", 0)], [Op("put", key, host, lease)]).succeeded


def release(etcd: Etcd, cluster: str, vm_id: str, lease: int) -> bool:
    """Let go of ``vm_id``; False (nothing changed) unless ``lease`` holds it."""
    key = owner_key(cluster, vm_id)
    return etcd.txn([Compare(key, "LEASE", lease)], [Op("delete", key)]).succeeded


def stop_and_release(etcd: Etcd, cluster: str, vm: ClusterVM, lease: int) -> bool:
    """The admin stopped ``vm`` on its owner: in one transaction, while ``lease`` still
    owns it, its record says "not wanted running" and the owner key goes. False (nothing
    changed) when ``lease`` does not own it."""
    key = owner_key(cluster, vm.id)
    record = ClusterVM(vm.id, vm.name, vm.memory_mb, vm.policy, False, vm.settings)
    return etcd.txn([Compare(key, "LEASE", lease)],
                    [Op("put", vm_key(cluster, vm.id), record.to_json()),
                     Op("delete", key)]).succeeded


def hand_over(etcd: Etcd, cluster: str, vm_id: str, source_lease: int, target_host: str,
              target_lease: int) -> bool:
    """Move ownership of ``vm_id`` from the host holding ``source_lease`` to
    ``target_host`` (bound to ``target_lease``) in ONE etcd transaction — the switch-over
    point of a quick or live migration.

    Guards: the owner key exists and is bound to ``source_lease`` (so a source whose lease
    expired, or whose VM was already taken over by failover, cannot hand it over) and the
    target's host record exists under ``target_lease`` (the target is a live member).
    Returns True when ownership moved; False when a guard failed and nothing changed —
    then the VM must keep running on the source (or nowhere), never on the target.

    Contract for the caller (a migration): the target may resume the guest only after
    this returned True; the source must stop its copy before calling it (quick
    migration: saved; live migration: paused at switch-over), and must not resume it
    after True.
    """
    key = owner_key(cluster, vm_id)
    guards = [Compare(key, "LEASE", source_lease),
              Compare(host_key(cluster, target_host), "LEASE", target_lease)]
    return etcd.txn(guards, [Op("put", key, target_host, target_lease)]).succeeded


def read_view(etcd: Etcd, cluster: str) -> tuple[list[ClusterVM], list[HostRecord]]:
    """The VM records with their owners and the live host records, from one read."""
    _, kvs = etcd.get_prefix(_root(cluster))
    owners = {kv.key.rsplit("/", 1)[1]: kv for kv in kvs if "/owners/" in kv.key}
    vms = []
    for kv in kvs:
        if "/vms/" in kv.key:
            held = owners.get(kv.key.rsplit("/", 1)[1])
            vms.append(ClusterVM.from_json(kv.value, held.value if held else None,
                                           held.lease if held else 0))
    hosts = [HostRecord.from_json(kv.value) for kv in kvs if "/hosts/" in kv.key]
    return vms, hosts


@dataclass(frozen=True)
class ClusterView:
    """Everything under the cluster's root, read at one revision."""

    revision: int
    vms: list[ClusterVM] = field(default_factory=list)
    hosts: list[HostRecord] = field(default_factory=list)
    members: dict[str, str] = field(default_factory=dict)  # host -> its member record
    paused: frozenset[str] = frozenset()
    created: bool = False


def read_cluster(etcd: Etcd, cluster: str) -> ClusterView:
    """One range read of the whole cluster (VMs with owners, hosts, members, paused)."""
    revision, kvs = etcd.get_prefix(_root(cluster))
    start = len(_root(cluster))
    owners = {kv.key.rsplit("/", 1)[1]: kv for kv in kvs if "/owners/" in kv.key}
    view = ClusterView(revision, created=any(kv.key == _root(cluster) + "created"
                                             for kv in kvs))
    paused = set()
    for kv in kvs:
        kind, _, name = kv.key[start:].partition("/")
        if kind == "vms":
            held = owners.get(name)
            view.vms.append(ClusterVM.from_json(kv.value, held.value if held else None,
                                                held.lease if held else 0))
        elif kind == "hosts":
            view.hosts.append(HostRecord.from_json(kv.value))
        elif kind == "members":
            view.members[name] = kv.value
        elif kind == "paused":
            paused.add(name)
    return ClusterView(view.revision, view.vms, view.hosts, view.members, frozenset(paused),
                       view.created)
