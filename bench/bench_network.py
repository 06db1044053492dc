"""Virtual switch data path and control plane: throughput and latency between two guests
on one switch and between a guest and the host, synthetic vs legacy adapters, and the
switch against a plain Linux bridge set up by hand in the same run.

    .venv/bin/python bench/bench_network.py [--megabytes 32] [--pings 10] [--rounds 10]
                                            [--repeats 3] [--quick] [--json]

Set-up (root; a real `viridian serve`, TCG): two guests (256 MB), each with a synthetic
adapter on internal switch ``BenchS`` (10.51.0.0/24) and a legacy one on internal switch
``BenchL`` (10.52.0.0/24); the host has .1 on both. Measured:

- guest→guest: ``wget`` of ``--megabytes`` MiB (median of ``--repeats``) from busybox
  ``httpd`` on the other guest (wall time inside the guest, ``/proc/uptime``), and
  ``ping`` round trips (busybox avg);
- guest←host: ``wget`` from a Python HTTP server on the host's switch address, and
  ping to the host;
- the same guest→guest transfer with both synthetic taps moved by hand onto a plain
  bridge (``ip link add brh type bridge``): the switch's data-path overhead;
- control plane: ``switch new`` + ``switch remove`` of an internal switch through the
  API vs the same bridge, address and link-up done by hand with ``ip``.

TCG bounds the absolute numbers (the guests' CPUs are emulated); the ratios are the
point: synthetic/legacy and viridian switch/plain bridge. ``--quick`` (smoke test):
1 MiB transfers, one timed each (after its warm-up), 2 pings, one control-plane round.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.server
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.service.harness import Console, running_service

from viridian.guestkit import build
from viridian.network.names import tap_name

SWITCHES = {"BenchS": "10.51.0", "BenchL": "10.52.0"}
HAND_BRIDGE = "vbenchbr0"


def guest_sh(api: Any, vm: str, script: str, timeout_s: float = 120) -> str:
    reply = api.post(f"/vms/{vm}/integration/exec",
                     json={"argv": ["/bin/sh", "-c", script], "timeout_s": timeout_s},
                     timeout=timeout_s + 30)
    reply.raise_for_status()
    body = reply.json()
    out = base64.b64decode(body["stdout_b64"]).decode(errors="replace")
    if body["exit_code"] != 0:
        err = base64.b64decode(body["stderr_b64"]).decode(errors="replace")
        raise RuntimeError(f"{vm}: {script!r} failed ({body['exit_code']}): {out}{err}")
    return out


IFNAME = ('ifname() { for i in /sys/class/net/*; do '
          '[ "$(cat $i/address)" = "$1" ] && echo ${i##*/}; done; }; ')


def setup_guests(service: Any, api: Any, iso: Path) -> None:
    for name, prefix in SWITCHES.items():
        reply = api.post("/switches", json={"name": name, "type": "internal",
                                            "subnet": f"{prefix}.0/24"})
        reply.raise_for_status()
    for vm in ("BA", "BB"):
        api.post("/vms", json={"name": vm, "memory_mb": 256, "dvd": str(iso)}).raise_for_status()
        api.post(f"/vms/{vm}/nics", json={"switch": "BenchS"}).raise_for_status()
        api.post(f"/vms/{vm}/nics", json={"switch": "BenchL", "legacy": True}).raise_for_status()
    jobs = [api.post(f"/vms/{vm}/start").json() for vm in ("BA", "BB")]
    for vm, job in zip(("BA", "BB"), jobs, strict=True):
        done = api.get(f"/jobs/{job['id']}", params={"wait": 60}).json()
        assert done["state"] == "completed", done
        Console(service.data_dir, api.get(f"/vms/{vm}").json()["id"]).wait_for(
            b"VIRIDIAN-GUEST READY", timeout=240)
    for host_number, vm in ((11, "BA"), (12, "BB")):
        adapters = api.get(f"/vms/{vm}").json()["settings"]["network_adapters"]
        for adapter, prefix in zip(adapters, SWITCHES.values(), strict=True):
            guest_sh(api, vm, f"{IFNAME} d=$(ifname {adapter['mac'].lower()}); "
                              f"ip link set $d up; ip addr add {prefix}.{host_number}/24 dev $d")


def serve_file_in_guest(api: Any, vm: str, megabytes: int) -> None:
    guest_sh(api, vm, f"mkdir -p /tmp/www; dd if=/dev/zero of=/tmp/www/f bs=1048576 "
                      f"count={megabytes} 2>/dev/null; httpd -p 8080 -h /tmp/www")


def fetch_seconds(api: Any, vm: str, url: str) -> float:
    """Wall time of the transfer inside the guest (``/proc/uptime``, 10 ms resolution)."""
    out = guest_sh(api, vm, f"cut -d' ' -f1 /proc/uptime; wget -q -O /dev/null {url}; "
                            "cut -d' ' -f1 /proc/uptime")
    before, after = (float(x) for x in out.split()[-2:])
    return max(after - before, 0.01)


def best_mbit(api: Any, vm: str, url: str, megabytes: int, repeats: int = 3) -> float:
    """The median of ``repeats`` transfers (after one warm-up: ARP, page cache)."""
    fetch_seconds(api, vm, url)
    times = sorted(fetch_seconds(api, vm, url) for _ in range(repeats))
    return mbit(megabytes, times[len(times) // 2])


def ping_ms(api: Any, vm: str, address: str, count: int) -> float:
    out = guest_sh(api, vm, f"ping -c {count} -i 0.2 {address}")
    found = re.search(r"min/avg/max = [\d.]+/([\d.]+)/", out)
    assert found, out
    return float(found.group(1))


@contextlib.contextmanager
def host_http_server(directory: Path, address: str) -> Any:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = lambda *a: Quiet(*a, directory=str(directory))  # noqa: E731
    server = http.server.ThreadingHTTPServer((address, 8081), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()


@contextlib.contextmanager
def hand_bridge(taps: list[str]) -> Any:
    """The synthetic taps moved onto a plain bridge made by hand; moved back after."""
    masters = {t: json.loads(subprocess.run(["ip", "-j", "link", "show", t], check=True,
                                            capture_output=True, text=True).stdout)[0]["master"]
               for t in taps}
    subprocess.run(f"ip link add {HAND_BRIDGE} type bridge && ip link set {HAND_BRIDGE} up",
                   shell=True, check=True)
    try:
        for tap in taps:
            subprocess.run(["ip", "link", "set", tap, "master", HAND_BRIDGE], check=True)
        yield
    finally:
        for tap, master in masters.items():
            subprocess.run(["ip", "link", "set", tap, "master", master], check=False)
        subprocess.run(["ip", "link", "del", HAND_BRIDGE], check=False)


def mbit(megabytes: int, seconds: float) -> float:
    return round(megabytes * 8 * 1.048576 / seconds, 1)


def data_path(api: Any, megabytes: int, pings: int, repeats: int) -> dict[str, Any]:
    serve_file_in_guest(api, "BB", megabytes)
    report: dict[str, Any] = {}
    for kind, prefix in (("synthetic", SWITCHES["BenchS"]), ("legacy", SWITCHES["BenchL"])):
        report[f"guest_guest_{kind}_mbit_s"] = best_mbit(
            api, "BA", f"http://{prefix}.12:8080/f", megabytes, repeats)
        report[f"guest_guest_{kind}_ping_ms"] = ping_ms(api, "BA", f"{prefix}.12", pings)
        report[f"guest_host_{kind}_mbit_s"] = best_mbit(
            api, "BA", f"http://{prefix}.1:8081/f", megabytes, repeats)
        report[f"guest_host_{kind}_ping_ms"] = ping_ms(api, "BA", f"{prefix}.1", pings)
    return report


def control_plane(api: Any, rounds: int) -> dict[str, float]:
    started = time.perf_counter()
    for i in range(rounds):
        api.post("/switches", json={"name": f"Tmp{i}", "type": "internal",
                                    "subnet": f"10.53.{i}.0/24"}).raise_for_status()
        api.delete(f"/switches/Tmp{i}").raise_for_status()
    viridian = (time.perf_counter() - started) / rounds
    started = time.perf_counter()
    for i in range(rounds):
        subprocess.run(f"ip link add vbenchx{i} type bridge && ip addr add 10.53.{i}.1/24 dev "
                       f"vbenchx{i} && ip link set vbenchx{i} up && ip link del vbenchx{i}",
                       shell=True, check=True)
    by_hand = (time.perf_counter() - started) / rounds
    return {"switch_new_remove_ms": round(viridian * 1000, 1),
            "by_hand_ip_ms": round(by_hand * 1000, 1),
            "ratio_control_plane_viridian_to_hand": round(viridian / by_hand, 1)}


def run(megabytes: int, pings: int, rounds: int, repeats: int) -> dict[str, Any]:
    """Every figure; each transfer figure the median of ``repeats`` timed transfers."""
    iso = build().iso
    with running_service() as service, service.client() as api, \
            tempfile.TemporaryDirectory() as www:
        try:
            (Path(www) / "f").write_bytes(b"\0" * megabytes * 1048576)
            setup_guests(service, api, iso)
            with host_http_server(Path(www), f"{SWITCHES['BenchS']}.1"), \
                    host_http_server(Path(www), f"{SWITCHES['BenchL']}.1"):
                report = data_path(api, megabytes, pings, repeats)
            ids = [api.get(f"/vms/{vm}").json()["id"] for vm in ("BA", "BB")]
            with hand_bridge([tap_name(vm_id, 0) for vm_id in ids]):
                report["guest_guest_synthetic_plain_bridge_mbit_s"] = best_mbit(
                    api, "BA", f"http://{SWITCHES['BenchS']}.12:8080/f", megabytes, repeats)
                report["guest_guest_synthetic_plain_bridge_ping_ms"] = ping_ms(
                    api, "BA", f"{SWITCHES['BenchS']}.12", pings)
            report.update(control_plane(api, rounds))
        finally:
            for vm in ("BA", "BB"):
                api.post(f"/vms/{vm}/stop", params={"wait": 30})
                api.delete(f"/vms/{vm}")
            for name in SWITCHES:
                api.delete(f"/switches/{name}")
    report["megabytes"], report["pings"] = megabytes, pings
    for where in ("guest_guest", "guest_host"):
        report[f"ratio_{where}_synthetic_to_legacy_throughput"] = round(
            report[f"{where}_synthetic_mbit_s"] / report[f"{where}_legacy_mbit_s"], 2)
    report["ratio_switch_to_plain_bridge_throughput"] = round(
        report["guest_guest_synthetic_mbit_s"]
        / report["guest_guest_synthetic_plain_bridge_mbit_s"], 2)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=32)
    parser.add_argument("--pings", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed transfers per throughput figure (median; default 3)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.megabytes, args.pings, args.rounds, args.repeats = 1, 2, 1, 1
    if min(args.megabytes, args.pings, args.rounds, args.repeats) < 1:
        parser.error("--megabytes, --pings, --rounds and --repeats must be at least 1")
    report = run(args.megabytes, args.pings, args.rounds, args.repeats)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
