"""CLI latency: whole ``viridian`` commands as a user runs them, beside a bare Python request.

    .venv/bin/python bench/bench_cli.py [--runs 15] [--vms 20] [--quick] [--json]

Set-up: a real ``viridian serve`` (TCG, private data folder, free port) with ``--vms`` VMs
defined (none started: no QEMU runs). Timed, each as a fresh process (``subprocess``,
wall time from spawn to exit), interleaved run by run so that load on the machine hits
every contender alike:

- ``viridian vm list --json``, ``viridian vm show X --json``, ``viridian --help`` (the
  console script of this virtualenv, using the local token through ``VIRIDIAN_DATA_DIR``
  as an admin on the host would);
- the peer: ``python -c "import urllib.request ..."`` sending the same ``GET`` with the
  token to the same endpoint and printing the body — the least any Python client can do.

Printed: the median of ``--runs`` runs of each, and each command's ratio to the peer
asking the same endpoint (``--help`` is compared with the ``vm list`` request). Goal
(issue 12): ratio <= 2. ``--quick`` (smoke test): 3 runs, 2 VMs.
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
from pathlib import Path
from typing import Any

import httpx

from lifecycle_viridian import ViridianService

VIRIDIAN = Path(sys.executable).with_name("viridian")
PEER_CODE = (
    "import sys, urllib.request\n"
    "request = urllib.request.Request(sys.argv[1], "
    "headers={'Authorization': 'Bearer ' + sys.argv[2]})\n"
    "sys.stdout.write(urllib.request.urlopen(request).read().decode())\n"
)


def define_vms(service: ViridianService, count: int) -> list[str]:
    """Define ``count`` VMs (128 MB, Off) through the API; their names."""
    token = (service.data_dir / "token").read_text().strip()
    names = [f"bench-cli-{n}" for n in range(count)]
    with httpx.Client(base_url=service.url + "/api/v1", timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as api:
        for name in names:
            api.post("/vms", json={"name": name, "memory_mb": 128}).raise_for_status()
    return names


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one process run; raises when it fails."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    return elapsed


def contenders(service: ViridianService, vm: str) -> dict[str, list[str]]:
    """Name → argv of every timed process."""
    token = (service.data_dir / "token").read_text().strip()
    api = service.url + "/api/v1"
    peer = [sys.executable, "-c", PEER_CODE]
    return {
        "viridian vm list --json": [str(VIRIDIAN), "vm", "list", "--json"],
        "peer GET /vms": [*peer, f"{api}/vms", token],
        f"viridian vm show {vm} --json": [str(VIRIDIAN), "vm", "show", vm, "--json"],
        f"peer GET /vms/{vm}": [*peer, f"{api}/vms/{vm}", token],
        "viridian --help": [str(VIRIDIAN), "--help"],
    }


def measure(service: ViridianService, vm: str, runs: int) -> dict[str, float]:
    """Median wall seconds per contender, runs interleaved."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRIDIAN_")}
    env.update(VIRIDIAN_URL=service.url, VIRIDIAN_DATA_DIR=str(service.data_dir))
    argvs = contenders(service, vm)
    samples: dict[str, list[float]] = {name: [] for name in argvs}
    for argv in argvs.values():  # warm the page cache once, untimed
        timed(argv, env)
    for _ in range(runs):
        for name, argv in argvs.items():
            samples[name].append(timed(argv, env))
    return {name: statistics.median(values) for name, values in samples.items()}


def report(medians: dict[str, float], runs: int, vms: int) -> dict[str, Any]:
    """The figures: medians in ms and each command's ratio to its peer."""
    names = list(medians)
    list_cmd, list_peer, show_cmd, show_peer, help_cmd = names
    ms = {name: round(seconds * 1000, 1) for name, seconds in medians.items()}
    return {
        "runs": runs,
        "vms": vms,
        "median_ms": ms,
        "ratio": {
            list_cmd: round(medians[list_cmd] / medians[list_peer], 2),
            show_cmd: round(medians[show_cmd] / medians[show_peer], 2),
            help_cmd: round(medians[help_cmd] / medians[list_peer], 2),
        },
        "goal_ratio": 2.0,
    }


def print_table(figures: dict[str, Any]) -> None:
    print(f"CLI latency: median of {figures['runs']} runs, {figures['vms']} VMs defined")
    for name, value in figures["median_ms"].items():
        ratio = figures["ratio"].get(name)
        shown = f"   {ratio:.2f}x the bare request" if ratio is not None else ""
        print(f"  {name:<40} {value:8.1f} ms{shown}")
    print(f"  goal: <= {figures['goal_ratio']:.1f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--vms", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="3 runs, 2 VMs (smoke test)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    runs, vms = (3, 2) if args.quick else (args.runs, args.vms)
    service = ViridianService()
    try:
        service.start()
        names = define_vms(service, vms)
        figures = report(measure(service, names[-1], runs), runs, vms)
    finally:
        service.stop()
        shutil.rmtree(service.data_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
