"""A deterministic simulator of the cluster's HA logic with a fake clock (like Proxmox's
HA simulator; docs/architecture.md, "Failover cluster: simulator").

It drives the real decision code (:class:`viridian.cluster.agent.AgentCore`, placement,
the fencing rule) against a model of etcd (leases that expire at or after their TTL,
never before; atomic transactions) and of hosts: each has a service that runs the agent
(it can crash, be frozen or be cut off from etcd), a fence guard beside it that keeps
enforcing the deadline the agent last gave it (it dies only with the host), its QEMU
processes, a clock that drifts and a site (a whole site can crash or be cut off at
once). Time advances in fixed steps; the same seed gives the
same run. After every step it checks the one-copy property; :meth:`Simulation.settle`
then checks progress.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from viridian.cluster.agent import AgentCore, Plan
from viridian.cluster.fencing import FenceRule
from viridian.cluster.model import ClusterVM, HAPolicy, HostRecord, HostState, Priority
from viridian.cluster.placement import PENDING_NO_MEMORY, failback_moves, place

__all__ = ["Fault", "SimHost", "Simulation", "Violation", "generate"]

STEP = 0.1


class Violation(AssertionError):
    """A property of the cluster did not hold; the message says which, when and where."""


@dataclass
class SimEtcd:
    """etcd as the agents see it: leases with a server-side expiry, owner keys bound to
    leases, atomic claims. ``extend`` models a leader change (leases outlive their TTL)."""

    leases: dict[int, tuple[str, float, float]] = field(default_factory=dict)
    owners: dict[str, tuple[str, int]] = field(default_factory=dict)
    hosts: dict[str, tuple[HostRecord, int]] = field(default_factory=dict)
    next_id: int = 1
    ops: int = 0

    def grant(self, host: str, ttl: float, now: float) -> int:
        self.ops += 1
        lease, self.next_id = self.next_id, self.next_id + 1
        self.leases[lease] = (host, ttl, now + ttl)
        return lease

    def keepalive(self, lease: int, now: float) -> int:
        self.ops += 1
        if lease not in self.leases:
            return 0
        host, ttl, expires = self.leases[lease]
        self.leases[lease] = (host, ttl, max(expires, now + ttl))
        return int(ttl)

    def extend(self, seconds: float) -> None:
        self.leases = {i: (h, t, e + seconds) for i, (h, t, e) in self.leases.items()}

    def expire(self, now: float) -> None:
        gone = {i for i, (_, _, expires) in self.leases.items() if expires <= now}
        for lease in gone:
            del self.leases[lease]
        self.owners = {v: o for v, o in self.owners.items() if o[1] not in gone}
        self.hosts = {h: r for h, r in self.hosts.items() if r[1] not in gone}

    def claim(self, vm: str, host: str, lease: int) -> bool:
        self.ops += 1
        if vm in self.owners or lease not in self.leases:
            return False
        self.owners[vm] = (host, lease)
        return True

    def release(self, vm: str, host: str, lease: int) -> None:
        self.ops += 1
        if self.owners.get(vm) == (host, lease):
            del self.owners[vm]


@dataclass
class SimHost:
    name: str
    memory_mb: int
    site: str = ""
    rate: float = 1.0
    offset: float = 0.0
    service_up: bool = True
    powered: bool = True
    frozen_until: float = 0.0
    cut_until: float = 0.0
    lease: int | None = None
    running: set[str] = field(default_factory=set)
    guard_deadline: float | None = None
    next_tick: float = 0.0
    agent: AgentCore | None = None
    pending_start: list[str] = field(default_factory=list)

    def local(self, now: float) -> float:
        return self.offset + now * self.rate


@dataclass(frozen=True)
class Fault:
    """At ``at`` seconds: ``kind`` (crash, boot, freeze, cut, leader) on ``host`` for
    ``duration`` seconds (freeze and cut) or by ``duration`` seconds (leader: leases
    outlive their TTL by that much). ``host`` may be ``site:NAME``: every host of that
    site at once (a site lost or partitioned)."""

    at: float
    kind: str
    host: str = ""
    duration: float = 0.0


@dataclass
class Simulation:
    hosts: dict[str, SimHost]
    vms: dict[str, ClusterVM]
    rule: FenceRule
    faults: list[Fault] = field(default_factory=list)
    seed: int = 0
    now: float = 0.0
    etcd: SimEtcd = field(default_factory=SimEtcd)
    log: list[str] = field(default_factory=list)
    failovers: list[float] = field(default_factory=list)
    failbacks: list[tuple[float, str, str]] = field(default_factory=list)
    _down_since: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.faults = sorted(self.faults, key=lambda f: (f.at, f.kind, f.host))
        for host in self.hosts.values():
            host.agent = AgentCore(host.name, self.rule)

    # -- one step ------------------------------------------------------------------
    def run(self, until: float) -> None:
        while self.now < until:
            self._apply_faults()
            self.etcd.expire(self.now)
            for host in self.hosts.values():
                self._guard(host)
                self._service(host)
            self._check_one_copy()
            self.now = round(self.now + STEP, 6)

    def _apply_faults(self) -> None:
        while self.faults and self.faults[0].at <= self.now:
            fault = self.faults.pop(0)
            self.log.append(f"{self.now:.1f} {fault.kind} {fault.host} {fault.duration:g}")
            if fault.kind == "leader":
                self.etcd.extend(fault.duration)
                continue
            site = fault.host.removeprefix("site:") if fault.host.startswith("site:") else None
            for host in self.hosts.values():
                if host.name == fault.host or (site is not None and host.site == site):
                    self._fault(host, fault)

    def _fault(self, host: SimHost, fault: Fault) -> None:
        if fault.kind == "crash":
            host.powered = host.service_up = False
            self._lost(host.running)
            host.running.clear()
            host.pending_start.clear()
            host.guard_deadline = None
        elif fault.kind == "boot" and not host.powered:
            host.powered = host.service_up = True
            host.lease = None
            host.agent = AgentCore(host.name, self.rule)
            host.next_tick = self.now
        elif fault.kind == "freeze":
            host.frozen_until = max(host.frozen_until, self.now + fault.duration)
        elif fault.kind == "cut":
            host.cut_until = max(host.cut_until, self.now + fault.duration)

    @property
    def hour(self) -> int:
        """The hour of day (0-23) of the fake clock, for failback windows."""
        return int(self.now // 3600) % 24

    def _lost(self, vms: set[str]) -> None:
        for vm in vms:
            if self.vms[vm].policy.restarts:
                self._down_since.setdefault(vm, self.now)

    def _guard(self, host: SimHost) -> None:
        """The fence guard: past its deadline, every local HA VM is turned off."""
        if not host.powered or host.guard_deadline is None:
            return
        if host.local(self.now) >= host.guard_deadline:
            ha = {v for v in host.running if self.vms[v].policy.ha}
            if ha:
                self.log.append(f"{self.now:.1f} {host.name} guard fences {sorted(ha)}")
                self._lost(ha)
                host.running -= ha

    def _service(self, host: SimHost) -> None:
        if not host.service_up or self.now < host.frozen_until:
            return
        assert host.agent is not None
        agent, local = host.agent, host.local(self.now)
        for vm in host.pending_start:
            self._start(host, vm, local)
        host.pending_start.clear()
        if local < host.next_tick:
            return
        host.next_tick = local + self.rule.keepalive_interval
        if self.now < host.cut_until:
            self._fence_if_due(host, local)
            return
        self._renew(host, local)
        self._fence_if_due(host, local)
        vms = [self._with_owner(vm) for vm in self.vms.values()]
        records = [record for record, _ in self.etcd.hosts.values()]
        plan = agent.plan(local, vms, records, frozenset(host.running), self.hour)
        self._execute(host, plan, local)
        self._publish(host)

    def _renew(self, host: SimHost, local: float) -> None:
        assert host.agent is not None
        if host.lease is not None:
            ttl = self.etcd.keepalive(host.lease, self.now)
            host.agent.renewed(local, ttl)
            if ttl == 0:
                self._fence(host)
                host.lease = None
        if host.lease is None and not (host.running & self._ha()):
            host.lease = self.etcd.grant(host.name, self.rule.ttl, self.now)
            host.agent.new_lease(host.lease, local)
        if host.agent.renewed_at is not None and not host.agent.fenced:
            host.guard_deadline = self.rule.deadline(host.agent.renewed_at)

    def _ha(self) -> set[str]:
        return {v.id for v in self.vms.values() if v.policy.ha}

    def _fence_if_due(self, host: SimHost, local: float) -> None:
        assert host.agent is not None
        if host.agent.must_fence(local):
            self._fence(host)

    def _fence(self, host: SimHost) -> None:
        assert host.agent is not None
        plan = host.agent.fence_plan(host.running & self._ha())
        self._lost(set(plan.kill))
        host.running -= set(plan.kill)
        host.pending_start.clear()

    def _with_owner(self, vm: ClusterVM) -> ClusterVM:
        owner = self.etcd.owners.get(vm.id)
        return ClusterVM(vm.id, vm.name, vm.memory_mb, vm.policy, vm.desired_running,
                         owner=owner[0] if owner else None,
                         owner_lease=owner[1] if owner else 0)

    def _free(self, host: SimHost) -> int:
        return host.memory_mb - sum(self.vms[v].memory_mb for v in host.running) - sum(
            self.vms[v].memory_mb for v in host.pending_start)

    def _execute(self, host: SimHost, plan: Plan, local: float) -> None:
        assert host.lease is not None
        self._lost(set(plan.kill))
        host.running -= set(plan.kill)
        for vm in plan.release:
            self.etcd.release(vm, host.name, host.lease)
        for vm in plan.failback:  # stopped here first, then released: never two copies
            host.running.discard(vm)
            self.etcd.release(vm, host.name, host.lease)
            self.failbacks.append((self.now, vm, host.name))
        for vm in plan.start:
            if vm not in host.pending_start:
                host.pending_start.append(vm)
        for vm in plan.claim:
            if self._free(host) >= self.vms[vm].memory_mb and self.etcd.claim(
                    vm, host.name, host.lease):
                host.pending_start.append(vm)

    def _start(self, host: SimHost, vm: str, local: float) -> None:
        """The start of a claimed VM, one step after its claim (a freeze can fall between):
        like the service, it asks only the fencing rule (no etcd read in between)."""
        assert host.agent is not None
        if not host.agent.rule.may_start(local, host.agent.renewed_at):
            return
        host.running.add(vm)
        since = self._down_since.pop(vm, None)
        if since is not None:
            self.failovers.append(self.now - since)

    def _publish(self, host: SimHost) -> None:
        if host.lease is None:
            return
        self.etcd.ops += 1
        record = HostRecord(host.name, HostState.UP, host.memory_mb, self._free(host),
                            tuple(sorted(host.running)), host.site)
        self.etcd.hosts[host.name] = (record, host.lease)

    # -- properties -----------------------------------------------------------------
    def _check_one_copy(self) -> None:
        seen: dict[str, str] = {}
        for host in self.hosts.values():
            for vm in host.running:
                if vm in seen:
                    raise Violation(f"seed {self.seed}: {vm} runs on {seen[vm]} and "
                                    f"{host.name} at {self.now:.1f} s; log: {self.log[-8:]}")
                seen[vm] = host.name

    def settle(self, seconds: float) -> dict[str, str]:
        """Run ``seconds`` with no more faults, then check progress: every HA VM wanted
        running runs, unless the placement over the live hosts leaves it Pending for
        memory, and no failback is left to do. Returns VM id → pending reason."""
        self.faults.clear()
        self.run(self.now + seconds)
        running = {v for h in self.hosts.values() for v in h.running}
        vms = [self._with_owner(vm) for vm in self.vms.values()]
        records = [r for r, _ in self.etcd.hosts.values()]
        pending = place(vms, records).pending
        home = failback_moves(vms, records, self.hour)
        if home:
            raise Violation(f"seed {self.seed}: failback not done after settling: {home}; "
                            f"log: {self.log[-8:]}")
        for vm in self.vms.values():
            wanted = vm.policy.restarts and vm.desired_running
            if wanted and vm.id not in running and pending.get(vm.id) != PENDING_NO_MEMORY:
                raise Violation(f"seed {self.seed}: {vm.id} is not running after settling "
                                f"and not pending for memory ({pending.get(vm.id)}); "
                                f"log: {self.log[-8:]}")
        return pending


def generate(seed: int, ttl: int = 10) -> Simulation:
    """A random but reproducible scenario: 2-5 hosts, 1-24 VMs of mixed priorities,
    anti-affinity classes, preferred hosts, memory near capacity, and a schedule of
    crashes, reboots, freezes, cuts, flapping and leader changes. Every other seed also
    spreads the hosts over sites (VMs naming a preferred site, some with failback) and
    loses or cuts off a whole site."""
    rnd = random.Random(seed)
    names = [f"h{i}" for i in range(rnd.randint(2, 5))]
    hosts = {n: SimHost(n, rnd.choice([2048, 4096, 8192]), rate=1 + rnd.uniform(-5e-4, 5e-4),
                        offset=rnd.uniform(0, 1000)) for n in names}
    vms: dict[str, ClusterVM] = {}
    for i in range(rnd.randint(1, 24)):
        policy = HAPolicy(ha=rnd.random() < 0.85, priority=rnd.choice(list(Priority)),
                          preferred_hosts=tuple(rnd.sample(names, rnd.randint(0, 2))),
                          anti_affinity=tuple(rnd.sample(["db", "web"], rnd.randint(0, 1))))
        vms[f"vm{i}"] = ClusterVM(f"vm{i}", f"vm{i}", rnd.choice([256, 512, 1024, 2048]),
                                  policy, desired_running=True)
    faults = _faults(rnd, names)
    if seed % 2:
        faults += _sites(random.Random(-seed), hosts, vms, faults)
    return Simulation(hosts, vms, FenceRule.for_ttl(ttl), faults, seed=seed)


def _sites(rnd: random.Random, hosts: dict[str, SimHost], vms: dict[str, ClusterVM],
           faults: list[Fault]) -> list[Fault]:
    """Spread ``hosts`` over 2-3 sites, give VMs preferred sites, failback and failback
    windows, and return a site-wide fault: the site crashes (for good only while a host
    of another site is never crashed, so that some host lives) or is cut off a while."""
    sites = [f"s{i}" for i in range(rnd.randint(2, 3))]
    for i, host in enumerate(hosts.values()):
        host.site = sites[i % len(sites)]
    for vm_id, vm in vms.items():
        policy = replace(vm.policy, preferred_site=rnd.choice(["", *sites]),
                         failback=rnd.random() < 0.4,
                         failback_window=rnd.choice([None, None, (0, 1), (5, 6), (22, 2)]))
        vms[vm_id] = replace(vm, policy=policy)
    at, site = rnd.uniform(15, 90), rnd.choice(sites)
    if rnd.random() < 0.5:
        crashed = {f.host for f in faults if f.kind == "crash"}
        survivor = any(h.site != site and h.name not in crashed for h in hosts.values())
        lost = [Fault(at, "crash", f"site:{site}")]
        if rnd.random() < 0.6 or not survivor:
            lost.append(Fault(at + rnd.uniform(5, 40), "boot", f"site:{site}"))
        return lost
    return [Fault(at, "cut", f"site:{site}", rnd.uniform(0.5, 30))]


def _faults(rnd: random.Random, names: list[str]) -> list[Fault]:
    faults: list[Fault] = []
    for _ in range(rnd.randint(1, 6)):
        at, host = rnd.uniform(15, 90), rnd.choice(names)
        kind = rnd.choice(["crash", "freeze", "cut", "flap", "leader"])
        if kind == "crash":
            faults.append(Fault(at, "crash", host))
            if rnd.random() < 0.6:
                faults.append(Fault(at + rnd.uniform(5, 40), "boot", host))
        elif kind == "flap":
            for k in range(rnd.randint(2, 6)):
                faults.append(Fault(at + k * rnd.uniform(2, 12), "cut", host,
                                    rnd.uniform(0.5, 14)))
        elif kind == "leader":
            faults.append(Fault(at, "leader", "", rnd.uniform(0.5, 5)))
        else:
            faults.append(Fault(at, kind, host, rnd.uniform(0.5, 30)))
    return faults
