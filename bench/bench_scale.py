"""Scale: defining and listing thousands of VMs, beside libvirt defining and listing domains.

    .venv/bin/python bench/bench_scale.py [--vms 10000] [--domains 1000] [--quick] [--json]
                                          [--no-libvirt] [--no-libvirt-setup]

viridian: a real ``viridian serve`` (TCG, private data folder under /tmp, free port)
defines ``--vms`` VMs (128 MB, Off; none is started) through ``POST /api/v1/vms`` over one
keep-alive connection. Measured:

- per-create time of the first 100 and of the last 100 creates (mean ms), and their ratio
  (1.0 = constant time);
- ``GET /api/v1/vms`` (median of 5, until the whole body arrived);
- ``viridian vm list --json`` and ``viridian vm list`` as a user runs them (fresh
  processes, median of 3, output read to the end);
- the service's resident memory (``VmRSS``) with every VM defined, before and after the
  lists.

libvirt (``qemu:///system``; set up by ``scripts/libvirt-setup.sh`` like the lifecycle
bench does, else "libvirt unavailable" is printed and the run carries on): ``--domains``
minimal domains (TCG, 128 MB, no devices) defined through libvirt-python's ``defineXML``
on one connection (first/last 100), ``listAllDomains`` with each domain's state, and
``virsh list --all`` as a process. Every domain is undefined at the end.

Goals (issue 13, "Scale"): create <= 25 ms at 10,000; list 10,000 < 100 ms through the
API and < 0.5 s through the CLI; service RSS < 100 MB. ``--quick`` (smoke test): 300
VMs, 100 domains, no libvirt setup (libvirtd is used only when it already answers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from lifecycle_common import BenchError
from lifecycle_viridian import ViridianService

VIRIDIAN = Path(sys.executable).with_name("viridian")
EDGE = 100  # creates averaged at the start and at the end
DOMAIN_PREFIX = "viridian-scale-"
GOALS = {"create_ms": 25.0, "api_list_ms": 100.0, "cli_list_ms": 500.0, "rss_mb": 100.0}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _edges(samples: list[float]) -> dict[str, float]:
    """Mean ms of the first and last ``EDGE`` samples (seconds in) and their ratio."""
    edge = min(EDGE, max(1, len(samples) // 2))
    first = statistics.fmean(samples[:edge]) * 1000
    last = statistics.fmean(samples[-edge:]) * 1000
    return {"first_ms": round(first, 2), "last_ms": round(last, 2),
            "last_over_first": round(last / first, 2), "averaged": edge}


def _median_s(run: Callable[[], object], times: int) -> float:
    samples = []
    for _ in range(times):
        begin = time.perf_counter()
        run()
        samples.append(time.perf_counter() - begin)
    return statistics.median(samples)


# --- viridian ------------------------------------------------------------------------------


def define_vms(api: httpx.Client, count: int) -> list[float]:
    """Create ``scale-00000``… through the API; seconds per create."""
    samples = []
    for number in range(count):
        begin = time.perf_counter()
        answer = api.post("/vms", json={"name": f"scale-{number:05d}", "memory_mb": 128})
        samples.append(time.perf_counter() - begin)
        if answer.status_code != 201:
            raise BenchError(f"create {number} answered {answer.status_code}: {answer.text}")
        if number and number % 1000 == 0:
            say(f"viridian: {number} VMs defined ({samples[-1] * 1000:.1f} ms for the last)")
    return samples


def api_list_s(api: httpx.Client, count: int) -> float:
    def run() -> None:
        answer = api.get("/vms")
        answer.raise_for_status()
        if len(answer.json()["vms"]) != count:
            raise BenchError(f"GET /vms listed {len(answer.json()['vms'])}, not {count}")
    run()  # warm
    return _median_s(lambda: api.get("/vms").raise_for_status(), 5)


def cli_list_s(service: ViridianService, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRIDIAN_")}
    env.update(VIRIDIAN_URL=service.url, VIRIDIAN_DATA_DIR=str(service.data_dir))
    argv = [str(VIRIDIAN), "vm", "list", *args]

    def run() -> None:
        done = subprocess.run(argv, capture_output=True, env=env, check=False)
        if done.returncode != 0:
            raise BenchError(f"{argv} exited {done.returncode}: {done.stderr.decode()[-800:]}")
    run()
    return _median_s(run, 3)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise BenchError(f"no VmRSS for pid {pid}")


def measure_viridian(count: int) -> dict[str, Any]:
    service = ViridianService()
    try:
        service.start()
        assert service.process is not None
        token = (service.data_dir / "token").read_text().strip()
        with httpx.Client(base_url=service.url + "/api/v1", timeout=120,
                          headers={"Authorization": f"Bearer {token}"}) as api:
            creates = define_vms(api, count)
            defined_mb = rss_mb(service.process.pid)
            list_s = api_list_s(api, count)
        return {
            "vms": count,
            "create": _edges(creates),
            "api_list_ms": round(list_s * 1000, 1),
            "cli_list_json_ms": round(cli_list_s(service, "--json") * 1000, 1),
            "cli_list_ms": round(cli_list_s(service) * 1000, 1),
            "rss_defined_mb": defined_mb,
            "rss_mb": rss_mb(service.process.pid),
        }
    finally:
        service.stop()
        shutil.rmtree(service.data_dir, ignore_errors=True)


# --- libvirt ---------------------------------------------------------------------------------


def domain_xml(name: str) -> str:
    """A minimal persistent domain: TCG, 128 MB, one vCPU, no devices."""
    return (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>128</memory>"
            "<vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os></domain>")


def libvirt_connection(setup: bool) -> tuple[Any, str | None]:
    """(connection, None), or (None, why libvirt cannot be used here)."""
    import lifecycle_libvirt as lv

    reason = lv.prepare_libvirt(install=setup)
    if reason is not None:
        return None, reason
    try:
        import libvirt  # type: ignore[import-untyped]
    except ImportError:
        return None, "the libvirt-python bindings do not import"
    try:
        libvirt.registerErrorHandler(lambda _c, _e: None, None)
        return libvirt.open(lv.URI), None
    except libvirt.libvirtError as err:
        return None, f"cannot connect to {lv.URI}: {err}"


def measure_libvirt(count: int, setup: bool) -> dict[str, Any]:
    conn, reason = libvirt_connection(setup)
    if conn is None:
        return {"available": False, "reason": reason}
    names = [f"{DOMAIN_PREFIX}{number:05d}" for number in range(count)]
    try:
        _undefine(conn, names)  # leftovers of an interrupted run
        samples = []
        for name in names:
            begin = time.perf_counter()
            conn.defineXML(domain_xml(name))
            samples.append(time.perf_counter() - begin)
        def api_list() -> None:
            for domain in conn.listAllDomains():
                domain.name(), domain.state()
        return {
            "available": True,
            "domains": count,
            "define": _edges(samples),
            "api_list_ms": round(_median_s(api_list, 5) * 1000, 1),
            "virsh_list_ms": round(_median_s(_virsh_list, 3) * 1000, 1),
        }
    finally:
        _undefine(conn, names)
        conn.close()


def _virsh_list() -> None:
    subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all"], capture_output=True,
                   check=True)


def _undefine(conn: Any, names: list[str]) -> None:
    wanted = set(names)
    for domain in conn.listAllDomains():
        if domain.name() in wanted or domain.name().startswith(DOMAIN_PREFIX):
            domain.undefine()


# --- report ----------------------------------------------------------------------------------


def ratios(viridian: dict[str, Any], libvirt: dict[str, Any]) -> dict[str, float]:
    """viridian / libvirt: per create (last 100), and list time per 1,000 VMs/domains."""
    if not libvirt.get("available"):
        return {}
    per_k = viridian["vms"] / 1000, libvirt["domains"] / 1000
    return {
        "create_last": round(viridian["create"]["last_ms"] / libvirt["define"]["last_ms"], 2),
        "api_list_per_1000": round(viridian["api_list_ms"] / per_k[0]
                                   / (libvirt["api_list_ms"] / per_k[1]), 2),
        "cli_list_per_1000": round(viridian["cli_list_ms"] / per_k[0]
                                   / (libvirt["virsh_list_ms"] / per_k[1]), 2),
    }


def print_report(figures: dict[str, Any]) -> None:
    v, lv = figures["viridian"], figures["libvirt"]
    goals = figures["goals"]
    print(f"viridian, {v['vms']} VMs defined through the API")
    print(f"  create, first {v['create']['averaged']}   {v['create']['first_ms']:9.2f} ms each")
    print(f"  create, last {v['create']['averaged']}    {v['create']['last_ms']:9.2f} ms each"
          f"   ({v['create']['last_over_first']:.2f}x the first; goal <= {goals['create_ms']} ms)")
    print(f"  GET /vms               {v['api_list_ms']:9.1f} ms"
          f"   (goal < {goals['api_list_ms']} ms at 10,000)")
    print(f"  viridian vm list --json {v['cli_list_json_ms']:8.1f} ms")
    print(f"  viridian vm list       {v['cli_list_ms']:9.1f} ms"
          f"   (goal < {goals['cli_list_ms']} ms at 10,000)")
    print(f"  service RSS, defined   {v['rss_defined_mb']:9.1f} MB")
    print(f"  service RSS, at the end {v['rss_mb']:8.1f} MB   (goal < {goals['rss_mb']} MB)")
    if not lv.get("available"):
        print(f"libvirt unavailable: {lv.get('reason')}")
        return
    print(f"libvirt, {lv['domains']} domains")
    print(f"  defineXML, first {lv['define']['averaged']} {lv['define']['first_ms']:8.2f} ms each")
    print(f"  defineXML, last {lv['define']['averaged']}  {lv['define']['last_ms']:8.2f} ms each")
    print(f"  listAllDomains + state {lv['api_list_ms']:8.1f} ms")
    print(f"  virsh list --all       {lv['virsh_list_ms']:8.1f} ms")
    print("ratios viridian / libvirt (list times per 1,000)")
    for name, value in figures["ratio"].items():
        print(f"  {name:<22} {value:8.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--domains", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true",
                        help="300 VMs, 100 domains, no libvirt setup (smoke test)")
    parser.add_argument("--no-libvirt", action="store_true", help="leave libvirt out")
    parser.add_argument("--no-libvirt-setup", action="store_true",
                        help="do not run scripts/libvirt-setup.sh; use libvirtd as it is")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    vms, domains = (300, 100) if args.quick else (args.vms, args.domains)
    viridian = measure_viridian(vms)
    libvirt: dict[str, Any] = {"available": False, "reason": "left out (--no-libvirt)"}
    if not args.no_libvirt:
        libvirt = measure_libvirt(domains, setup=not (args.quick or args.no_libvirt_setup))
    figures = {"viridian": viridian, "libvirt": libvirt, "ratio": ratios(viridian, libvirt),
               "goals": GOALS}
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
