"""Failover cluster control-plane cost (issue 15), on a real 3-member etcd.

    .venv/bin/python bench/bench_cluster.py [--seconds 10] [--hosts 3] [--vms 50] [--quick] [--json]

Each of ``--hosts`` host loops does, once a second, what a host agent does: a lease
keepalive, one read of the cluster view (``--vms`` VM records per host, with owners) and
a publish of its host record, through ``viridian.cluster.etcd`` (etcd3gw, endpoint
rotation). Printed: etcd requests per second and the client CPU seconds per host-second.
Peer, in the same run: the same keepalive-only loop as a bare ``http.client`` POST to
the gateway (the least any Python client can do), and the ratio of keepalive CPU.
Failover time (host death → VM running elsewhere) is reported from the deterministic
simulator (fake clock, TTL 10 s: goal ≤ TTL + 5 s), and with ``--failover-rounds N``
measured for real: three ``viridian serve`` services on loopback with one HA VM (no
disk: QEMU's firmware runs) on a shared folder; each round SIGKILLs the owner's service,
fence guard and QEMU and times until a QEMU of the VM runs on another host, printed
beside the goal TTL + 5 s (ratio), then brings the host back.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster.etcd_members import etcd_cluster

from viridian.cluster.etcd import Etcd
from viridian.cluster.model import ClusterVM, HAPolicy, HostRecord
from viridian.cluster.ownership import claim, read_view
from viridian.cluster.simulator import generate


def _host_loop(endpoints: list[str], name: str, seconds: float, out: dict[str, float]) -> None:
    client = Etcd(endpoints)
    lease = client.grant(10)
    cpu0, end = time.thread_time(), time.monotonic() + seconds
    while time.monotonic() < end:
        tick = time.monotonic()
        client.keepalive(lease)
        read_view(client, "bench")
        client.put(f"/viridian/bench/hosts/{name}", HostRecord(name).to_json(), lease)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    out[name] = time.thread_time() - cpu0
    out[name + ":requests"] = client.requests


def _peer_loop(endpoint: str, seconds: float, out: dict[str, float]) -> None:
    url = urlsplit(endpoint)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=2)
    conn.request("POST", "/v3/lease/grant", json.dumps({"TTL": "10"}))
    lease = json.loads(conn.getresponse().read())["ID"]
    cpu0, end = time.thread_time(), time.monotonic() + seconds
    while time.monotonic() < end:
        tick = time.monotonic()
        conn.request("POST", "/v3/lease/keepalive", json.dumps({"ID": lease}))
        conn.getresponse().read()
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    out["peer"] = time.thread_time() - cpu0


def _keepalive_only(endpoints: list[str], seconds: float, out: dict[str, float]) -> None:
    client = Etcd(endpoints)
    lease = client.grant(10)
    cpu0, end = time.thread_time(), time.monotonic() + seconds
    while time.monotonic() < end:
        tick = time.monotonic()
        client.keepalive(lease)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    out["keepalive"] = time.thread_time() - cpu0


def _seed(endpoints: list[str], hosts: int, vms: int) -> None:
    client = Etcd(endpoints)
    lease = client.grant(60)
    for i in range(hosts * vms):
        vm = ClusterVM(f"vm{i}", f"vm{i}", 256, HAPolicy(ha=True), desired_running=True)
        client.put(f"/viridian/bench/vms/{vm.id}", vm.to_json())
        claim(client, "bench", vm.id, f"h{i % hosts}", lease)


def run(seconds: float, hosts: int, vms: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder, etcd_cluster(Path(folder)) as etcd:
        _seed(etcd.endpoints, hosts, vms)
        out: dict[str, float] = {}
        threads = [threading.Thread(target=_host_loop, args=(etcd.endpoints, f"h{i}", seconds,
                                                             out)) for i in range(hosts)]
        threads += [threading.Thread(target=_peer_loop, args=(etcd.endpoints[0], seconds, out)),
                    threading.Thread(target=_keepalive_only, args=(etcd.endpoints, seconds,
                                                                   out))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    requests = sum(out[f"h{i}:requests"] for i in range(hosts))
    failovers = [t for seed in range(40) for t in _failovers(seed)]
    return {
        "hosts": hosts, "vms_per_host": vms, "seconds": seconds,
        "etcd_requests_per_s": round(requests / seconds, 1),
        "agent_cpu_s_per_host_s": round(sum(out[f"h{i}"] for i in range(hosts))
                                        / hosts / seconds, 4),
        "keepalive_cpu_ms_per_s": round(out["keepalive"] / seconds * 1000, 3),
        "peer_keepalive_cpu_ms_per_s": round(out["peer"] / seconds * 1000, 3),
        "keepalive_cpu_ratio": round(out["keepalive"] / max(out["peer"], 1e-6), 2),
        "simulated_failover_s": {"median": round(statistics.median(failovers), 1),
                                 "max_single_crash_ttl10": round(max(_single_crash()), 1)},
    }


def _failovers(seed: int) -> list[float]:
    sim = generate(seed)
    sim.run(60)
    return sim.failovers


def _single_crash() -> list[float]:
    from viridian.cluster.fencing import FenceRule
    from viridian.cluster.simulator import Fault, SimHost, Simulation
    vms = {f"v{i}": ClusterVM(f"v{i}", f"v{i}", 256, HAPolicy(ha=True, preferred_hosts=("a",)),
                              desired_running=True) for i in range(10)}
    sim = Simulation({n: SimHost(n, 8192) for n in "abc"}, vms, FenceRule.for_ttl(10),
                     [Fault(10.0, "crash", "a")])
    sim.run(60)
    return sim.failovers


def real_failover(ttl: int, rounds: int) -> dict[str, object]:
    """``rounds`` owner deaths on three real services (see the module docstring)."""
    import contextlib
    import os
    import shutil
    import signal

    import httpx
    from tests.qemu_processes import _qemu_processes, end_qemu_under, kill, qemu_under
    from tests.service.harness import Service

    root = Path(tempfile.mkdtemp(prefix="vir-bf-", dir="/tmp"))
    services = {f"h{i}": Service(root / f"h{i}") for i in (1, 2, 3)}

    def api(svc: Service) -> httpx.Client:
        return svc.client()

    def running_on(vm_id: str) -> list[str]:
        return [name for name, svc in services.items() for p, _ in _qemu_processes()
                if str(svc.data_dir / "run" / vm_id) in p.cmdline
                and "qemu-system" in p.cmdline.split(" ")[0]]

    def guard(svc: Service) -> int:
        with contextlib.suppress(OSError, ValueError):
            return int((svc.data_dir / "cluster" / "guard.lock.pid").read_text())
        return 0

    def wait(condition: object, limit: float = 120.0) -> object:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            value = condition()  # type: ignore[operator]
            if value:
                return value
            time.sleep(0.05)
        raise RuntimeError("timed out")

    times: list[float] = []
    with tempfile.TemporaryDirectory() as folder, etcd_cluster(Path(folder)) as etcd:
        try:
            body = {"etcd": ",".join(etcd.endpoints), "name": "bench", "lease_ttl": ttl}
            for name, svc in services.items():
                svc.start()
                with api(svc) as c:
                    path = "/cluster" if name == "h1" else "/cluster/join"
                    c.post(path, json={**body, "host": name}).raise_for_status()
            with api(services["h1"]) as c:
                vm = c.post("/vms", json={"name": "ha", "memory_mb": 128}).json()
                c.delete("/vms/ha").raise_for_status()
                shutil.move(vm["folder"], root / "ha")
                c.post("/vms/import", json={"folder": str(root / "ha")}).raise_for_status()
                c.patch("/vms/ha", json={"high_availability": {"ha": True}}).raise_for_status()
                c.post("/vms/ha/start").raise_for_status()
            for _ in range(rounds):
                owner = str(wait(lambda: len(r := running_on(vm["id"])) == 1 and r[0]))
                svc = services[owner]
                pid = guard(svc)
                svc.kill()
                if pid:
                    os.kill(pid, signal.SIGKILL)
                kill(qemu_under(svc.data_dir))
                died = time.monotonic()
                wait(lambda o=owner: (r := running_on(vm["id"])) and r[0] != o)
                times.append(time.monotonic() - died)
                svc.start()
                with api(services[owner]) as c:
                    wait(lambda o=owner, c=c: any(h["name"] == o and h["state"] == "Up"
                                                  for h in c.get("/cluster").json()["hosts"]))
        finally:
            for svc in services.values():
                svc.stop()
                if guard(svc):
                    with contextlib.suppress(OSError):
                        os.kill(guard(svc), signal.SIGKILL)
                end_qemu_under(svc.data_dir)
            shutil.rmtree(root, ignore_errors=True)
    goal = ttl + 5
    return {"lease_ttl_s": ttl, "rounds": rounds,
            "failover_s": [round(t, 1) for t in times],
            "max_failover_s": round(max(times), 1), "goal_s": goal,
            "max_over_goal": round(max(times) / goal, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--vms", type=int, default=50)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--failover-rounds", type=int, default=0,
                        help="real failover rounds on three services (0: none)")
    parser.add_argument("--ttl", type=int, default=10, help="lease TTL of the real rounds")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    report = run(seconds, args.hosts, args.vms)
    if args.failover_rounds:
        report["real_failover"] = real_failover(args.ttl, args.failover_rounds)
    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
