"""Sampling cost: the service's CPU per second spent sampling every counter.

    .venv/bin/python bench/bench_counters.py [--defined 50] [--running 10] [--seconds 30]
                                             [--quick] [--no-libvirt] [--json]

A real `viridian serve` samples at a 1 s interval (``VIRIDIAN_COUNTER_INTERVAL_S=1``)
with ``--defined`` VMs defined and ``--running`` of them running (64 MB, SeaBIOS only,
TCG), each running VM with one 16 MiB raw hard disk at IDE 0:0 (so its disk counters are
sampled through QMP ``query-blockstats`` every tick). Over ``--seconds`` it measures

- the service process's whole CPU time per second (utime+stime of ``/proc/<pid>/stat``),
  once sampling at 1 s and once with sampling off (interval 3600 s) on the same set-up:
  the difference is the sampling cost (the target applies to it), and
- the sampler's own CPU per sample (``process_time`` around each sample, from
  ``/api/v1/counters/history``).

Target: under 1 % of one core. Peers in the same run:

- libvirt (``qemu:///system``, started by ``scripts/libvirt-setup.sh``): the same number
  of running guests (64 MB, TCG, one 16 MiB raw IDE disk each); ``virsh domstats
  --list-running`` once a second. Its cost is the CPU of the ``virsh`` processes plus
  what libvirtd used beyond its own idle CPU over the same time (libvirtd asks each QEMU
  for its statistics over QMP, as viridian does). ``--no-libvirt`` skips it.
- a plain shell loop that reads the kernel files viridian reads each second with ``cat``
  (``/proc/stat``, ``/proc/meminfo``, ``/proc/diskstats`` and, per running VM, every
  thread's ``schedstat`` and the process's ``stat``): no QMP, nothing computed — a floor.

``--quick``: 3 defined, 2 running, 4 s (the smoke test: a VM that is only defined, two
running ones - disk counters of more than one QEMU - and enough ticks for a figure).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from tests.service.harness import Service, act, turn_off_everything  # noqa: E402

from counters_libvirt import measure_libvirt  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
TARGET_PCT = 1.0
DISK_BYTES = 16 << 20


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure_service(defined: int, running: int, seconds: float,
                    interval_s: float = 1.0) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="vir-bc-", dir="/tmp"))
    service = Service(data_dir, {"VIRIDIAN_COUNTER_INTERVAL_S": str(interval_s)})
    service.start()
    api = service.client()
    try:
        for i in range(defined):
            body: dict[str, Any] = {"name": f"b{i:02d}", "memory_mb": 64}
            if i < running:
                body["vhd"] = str(_raw_disk(data_dir / f"b{i:02d}.img"))
            assert api.post("/vms", json=body).status_code == 201, body
        for i in range(running):
            act(api, f"b{i:02d}", "start")
        log(f"{defined} defined, {running} running; warming up")
        time.sleep(3)
        pid = service.process.pid if service.process else 0
        stats0, cpu0, t0 = api.get("/counters/history").json(), process_cpu_s(pid), time.monotonic()
        time.sleep(seconds)
        stats1, cpu1, t1 = api.get("/counters/history").json(), process_cpu_s(pid), time.monotonic()
        qemu_pids = [vm["pid"] for vm in api.get("/vms").json()["vms"] if vm["pid"]]
        disks = _sampled_disks(api) if interval_s == 1.0 else 0
        ticks = stats1["ticks"] - stats0["ticks"]
        sampler = stats1["sampling_cpu_s"] - stats0["sampling_cpu_s"]
        peer = measure_shell_peer(qemu_pids, seconds) if interval_s == 1.0 else 0.0
        return {
            "defined": defined, "running": running, "seconds": round(t1 - t0, 2),
            "disks_sampled": disks,
            "samples": ticks,
            "service_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
            "sampler_cpu_ms_per_sample": round(1000 * sampler / max(1, ticks), 3),
            "sampler_cpu_pct": round(100 * sampler / (t1 - t0), 3),
            "shell_peer_cpu_pct": peer,
        }
    finally:
        turn_off_everything(api)
        api.close()
        service.stop()
        shutil.rmtree(data_dir, ignore_errors=True)  # the service's data and the disks


def _raw_disk(path: Path) -> Path:
    with open(path, "wb") as image:
        image.truncate(DISK_BYTES)
    return path


def _sampled_disks(api: Any) -> int:
    """How many virtual disks the sampler reports (proof that QMP was asked)."""
    paths = api.get("/counters").json()["paths"]
    return sum(1 for p in paths if p.startswith("\\Hyper-V Virtual Storage Device(")
               and p.endswith("\\Write Bytes/sec"))


def measure_shell_peer(qemu_pids: list[int], seconds: float) -> float:
    """CPU % of one core used by a `cat` loop reading the same files once a second."""
    per_vm = " ".join(f"/proc/{pid}/task/*/schedstat /proc/{pid}/stat" for pid in qemu_pids)
    script = (f"end=$((SECONDS+{int(seconds)})); while [ $SECONDS -lt $end ]; do "
              f"cat /proc/stat /proc/meminfo /proc/diskstats {per_vm} >/dev/null; sleep 1; done")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(["bash", "-c", script], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return round(100 * used / (time.monotonic() - start), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defined", type=int, default=50)
    parser.add_argument("--running", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-libvirt", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.defined, args.running, args.seconds = 3, 2, 4
    r = measure_service(args.defined, args.running, args.seconds)
    idle = measure_service(args.defined, args.running, args.seconds, interval_s=3600)
    r["service_cpu_pct_without_sampling"] = idle["service_cpu_pct"]
    r["sampling_cost_pct"] = round(r["service_cpu_pct"] - idle["service_cpu_pct"], 3)
    r["ratio_sampler_to_shell"] = round(r["sampler_cpu_pct"] / r["shell_peer_cpu_pct"], 2) \
        if r["shell_peer_cpu_pct"] else None
    r["target_met"] = r["sampling_cost_pct"] < TARGET_PCT
    peer = None if args.no_libvirt else measure_libvirt(args.running, args.seconds, DISK_BYTES)
    r["libvirt"] = peer
    if peer and peer.get("domstats_cost_pct"):
        r["ratio_sampling_cost_to_libvirt"] = round(
            r["sampling_cost_pct"] / peer["domstats_cost_pct"], 3)
    if args.json:
        print(json.dumps(r, indent=2))
        return
    print(f"VMs: {r['defined']} defined, {r['running']} running; {r['samples']} samples "
          f"in {r['seconds']} s at 1 s")
    print(f"service CPU (whole process):  {r['service_cpu_pct']:.3f} % of one core; "
          f"{r['service_cpu_pct_without_sampling']:.3f} % with sampling off")
    print(f"sampling cost (difference):   {r['sampling_cost_pct']:.3f} % of one core "
          f"(target < {TARGET_PCT} %: {'met' if r['target_met'] else 'NOT met'})")
    print(f"sampler CPU:                  {r['sampler_cpu_pct']:.3f} % of one core "
          f"({r['sampler_cpu_ms_per_sample']:.3f} ms per sample)")
    print(f"peer: cat loop (no QMP):      {r['shell_peer_cpu_pct']:.3f} % of one core")
    print(f"ratio sampler / cat loop:     {r['ratio_sampler_to_shell']}")
    print(f"disks sampled:                {r['disks_sampled']}")
    if peer is None:
        return
    if "skipped" in peer:
        print(f"peer: libvirt skipped:        {peer['skipped']}")
        return
    print(f"peer: virsh domstats at 1 s:  {peer['domstats_cost_pct']:.3f} % of one core "
          f"(virsh {peer['virsh_cpu_pct']:.3f} % + libvirtd "
          f"{peer['libvirtd_extra_cpu_pct']:.3f} % above idle; {peer['disks']} disks)")
    print(f"ratio viridian / libvirt:     {r.get('ratio_sampling_cost_to_libvirt')}")


if __name__ == "__main__":
    main()
