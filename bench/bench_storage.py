"""Guest-level disk I/O through the per-VM storage daemon beside the same images opened by QEMU.

    .venv/bin/python bench/bench_storage.py [--quick] [--rounds N] [--json]

One service with ``storage_daemon: vhd`` (docs/architecture.md, "The storage path") runs
two guests at once (the guest kit's ISO, 256 MiB, 1 vCPU, TCG), so both pay the same
host load:

- **daemon**: a dynamic VHD at IDE 1:1, so the VM gets a storage daemon and *all* its
  hard disks go through it: a raw image at IDE 0:0 and a qcow2 at IDE 0:1 too, and on
  the SCSI controller (``virtio-scsi-pci``, where a Hyper-V VM's data disks sit) a raw
  image at 0:0 and a dynamic VHD at 0:1;
- **direct**: the same kinds of raw and qcow2 images at IDE 0:0 / 0:1 and a raw image
  at SCSI 0:0, opened by QEMU.

Both sides use the same cache semantics (QEMU's defaults: host page cache, write cache
on, a guest flush reaches the disk — in the daemon through NBD's flush), so the ratio
is the cost of the transport alone.

Inside each guest, busybox ``dd`` measures, per disk:

- ``seq``: sequential write and read with ``O_DIRECT`` (no guest page cache), 1 MiB
  requests, one ``dd``: one request in flight, so every request pays the transport's
  whole latency (the worst case for the daemon);
- ``seq x4``: the same transfer split into four concurrent ``O_DIRECT`` streams, one per
  quarter (up to four requests in flight, as a multi-threaded copy or ``fio`` with
  ``numjobs=4`` issues them);
- ``buffered``: what an admin's plain ``dd``/``cp`` does — a write through the guest's
  page cache ended by ``fsync`` (``conv=fsync``), and a read after the guest dropped
  its caches (the kernel's writeback and readahead put several requests in flight);
- 4k random write and read (one ``dd`` per 4 KiB request at scattered offsets, the same
  in both guests; each request pays a process start in the guest, so the 4k ratios
  understate the daemon's per-request cost).

Each disk is written once before the rounds (qcow2 and VHD allocate on first write; raw
does not), so the rounds measure steady state. Times come from the guest's
``/proc/uptime``. Rounds alternate between the guests; the table prints medians and the
ratio daemon/direct (throughput: above 1 is faster; the goal is at least 0.8 for
sequential I/O). The VHD rows' peer is the direct raw disk on the same controller (QEMU
cannot save a VM that opens a VHD itself). ``--quick`` (the smoke test): one round,
4 MiB sequential transfers (1 MiB per stream) and 8 random requests per disk and
operation (every row and operation still measured on both sides). Progress goes to
stderr; everything is removed at the end.

After the table, the **socket floor**: measured in the same run once the guests are
stopped, the time to move 1 MiB over a UNIX stream socket from one process to another
and get a 1-byte answer — what any socket transport (NBD, or anything else between two
processes) adds to a 1 MiB request at the least, before its own work. From it and the
direct side's time per MiB, each one-request-in-flight sequential row gets the best
daemon/direct ratio a socket transport could reach on this host:
``t_direct / (t_direct + floor)``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the lifecycle_* modules

from lifecycle_common import BenchError
from lifecycle_viridian import ViridianService

MB = 1024 * 1024
OPS = ("seq write MB/s", "seq read MB/s",
       "seq write x4 MB/s", "seq read x4 MB/s",
       "buffered write MB/s", "buffered read MB/s",
       "4k rand write IOPS", "4k rand read IOPS")
STREAMS = 4
"""Concurrent ``dd`` streams of the ``x4`` rows, each on its own quarter of the transfer."""
# (row, VM with the disk, its slot, peer VM, peer slot); a slot is "<bus> <location>"
ROWS = (("ide raw", "daemon", "ide 0:0", "direct", "ide 0:0"),
        ("ide qcow2", "daemon", "ide 0:1", "direct", "ide 0:1"),
        ("ide vhd vs raw direct", "daemon", "ide 1:1", "direct", "ide 0:0"),
        ("scsi raw", "daemon", "scsi 0:0", "direct", "scsi 0:0"),
        ("scsi vhd vs raw direct", "daemon", "scsi 0:1", "direct", "scsi 0:0"))
# Per VM: (slot, format, MiB beyond Sizes.disk_mb); distinct sizes, so the guest finds each
# disk by its size (a VHD's size is rounded up to CHS geometry by < 1 MiB here).
LAYOUT = {"daemon": (("ide 0:0", "raw", 0), ("ide 0:1", "qcow2", 8), ("ide 1:1", "vpc", 16),
                     ("scsi 0:0", "raw", 24), ("scsi 0:1", "vpc", 40)),
          "direct": (("ide 0:0", "raw", 0), ("ide 0:1", "qcow2", 8), ("scsi 0:0", "raw", 24))}


@dataclass(frozen=True)
class Sizes:
    """Per disk and operation: MiB of a sequential transfer, 4 KiB requests of a random
    one; ``disk_mb``: the smallest image's size (the others are larger, see LAYOUT)."""

    seq_mb: int
    random_ops: int
    disk_mb: int


QUICK = Sizes(seq_mb=4, random_ops=8, disk_mb=32)
"""``--quick``: the least that still times every path (a few dd processes per figure)."""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def make_disks(folder: Path, sizes: Sizes) -> dict[str, dict[str, Path]]:
    """Per VM, slot → image (distinct sizes, so the guest finds each disk by its size)."""
    disks: dict[str, dict[str, Path]] = {"daemon": {}, "direct": {}}
    for vm, layout in LAYOUT.items():
        for slot, fmt, extra in layout:
            name = slot.replace(":", "-").replace(" ", "-")
            path = folder / f"{vm}-{name}.{ {'vpc': 'vhd'}.get(fmt, fmt)}"
            subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path),
                            f"{sizes.disk_mb + extra}M"], check=True)
            disks[vm][slot] = path
    return disks


def sectors_of(path: Path) -> int:
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)],
                                     capture_output=True, text=True, check=True).stdout)
    return int(info["virtual-size"]) // 512


class Guest:
    def __init__(self, api: httpx.Client, name: str) -> None:
        self.api, self.name = api, name

    def sh(self, script: str, timeout: float = 600) -> str:
        reply = self.api.post(f"/vms/{self.name}/integration/exec", timeout=timeout + 30,
                              json={"argv": ["/bin/sh", "-c", script], "timeout_s": timeout})
        if reply.status_code != 200 or reply.json()["exit_code"] != 0:
            raise BenchError(f"guest {self.name}: {script[:80]}…: {reply.text[:500]}")
        return base64.b64decode(reply.json()["stdout_b64"]).decode()

    def wait_agent(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sh("true", timeout=10)
                return
            except BenchError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)


def timed(guest: Guest, sectors: int, command: str, before: str = "true") -> float:
    """Seconds the guest spent in ``command`` (``$dev`` is the disk of ``sectors``);
    ``before`` runs first, untimed."""
    script = (f"for b in /sys/block/sd*; do [ $(cat $b/size) -eq {sectors} ] && "
              "dev=/dev/${b##*/}; done; [ -n \"$dev\" ] || exit 3; " + before + "; "
              "t0=$(cut -d' ' -f1 /proc/uptime); " + command +
              "; t1=$(cut -d' ' -f1 /proc/uptime); echo $t0 $t1")
    t0, t1 = (float(x) for x in guest.sh(script).split())
    return max(t1 - t0, 0.01)


def measure(guest: Guest, sectors: int, sizes: Sizes) -> dict[str, float]:
    blocks = sectors // 8
    n, k = sizes.seq_mb, sizes.random_ops
    loop = (f"i=0; while [ $i -lt {k} ]; do dd {{io}} bs=4k count=1 "
            f"{{at}}=$(( (i * 7919) % {blocks} )) {{flag}}=direct 2>/dev/null; i=$((i+1)); done")
    part = n // STREAMS
    streams = ("k=0; while [ $k -lt " + str(STREAMS) + " ]; do {dd} & k=$((k+1)); done; wait")
    return {
        OPS[0]: n / timed(guest, sectors, f"dd if=/dev/zero of=$dev bs=1M count={n} "
                                          "oflag=direct 2>/dev/null"),
        OPS[1]: n / timed(guest, sectors, f"dd if=$dev of=/dev/null bs=1M count={n} "
                                          "iflag=direct 2>/dev/null"),
        OPS[2]: n / timed(guest, sectors, streams.format(
            dd=f"dd if=/dev/zero of=$dev bs=1M count={part} seek=$((k*{part})) "
               "oflag=direct 2>/dev/null")),
        OPS[3]: n / timed(guest, sectors, streams.format(
            dd=f"dd if=$dev of=/dev/null bs=1M count={part} skip=$((k*{part})) "
               "iflag=direct 2>/dev/null")),
        OPS[4]: n / timed(guest, sectors, f"dd if=/dev/zero of=$dev bs=1M count={n} "
                                          "conv=fsync 2>/dev/null"),
        OPS[5]: n / timed(guest, sectors, f"dd if=$dev of=/dev/null bs=1M count={n} "
                                          "2>/dev/null", before="sync; echo 3 > "
                                          "/proc/sys/vm/drop_caches"),
        OPS[6]: k / timed(guest, sectors, loop.format(io="if=/dev/zero of=$dev", at="seek",
                                                      flag="oflag")),
        OPS[7]: k / timed(guest, sectors, loop.format(io="if=$dev of=/dev/null", at="skip",
                                                      flag="iflag")),
    }


def run(sizes: Sizes, rounds: int) -> dict[str, Any]:
    from viridian.guestkit import build

    iso = build().iso
    service = ViridianService()
    (service.data_dir / "host.json").write_text(json.dumps({"storage_daemon": "vhd"}))
    folder = service.data_dir / "bench-disks"
    folder.mkdir()
    try:
        service.start()
        disks = make_disks(folder, sizes)
        with httpx.Client(base_url=service.url + "/api/v1", timeout=120, headers={
                "Authorization": f"Bearer {(service.data_dir / 'token').read_text().strip()}"
                }) as api:
            guests = {vm: start_vm(api, vm, iso, slots) for vm, slots in disks.items()}
            served = [p for p in service.data_dir.glob("run/*/nbd.sock")]
            if len(served) != 1:
                raise BenchError(f"expected one storage daemon, found sockets {served}")
            for name, slots in disks.items():  # allocate first: rounds measure steady state
                for path in slots.values():
                    timed(guests[name], sectors_of(path), f"dd if=/dev/zero of=$dev bs=1M "
                          f"count={sizes.seq_mb} oflag=direct 2>/dev/null")
            samples: dict[tuple[str, str, str], list[float]] = {}
            for r in range(rounds):
                for row, vm, slot, peer, peer_slot in ROWS:
                    say(f"round {r + 1}/{rounds}: {row}")
                    for side, name, s in (("daemon", vm, slot), ("direct", peer, peer_slot)):
                        for op, value in measure(guests[name], sectors_of(disks[name][s]),
                                                 sizes).items():
                            samples.setdefault((row, op, side), []).append(value)
            for name in guests:
                api.post(f"/vms/{name}/stop", params={"wait": 30})
        say("socket floor")
        floor = socket_floor_us(*((1, 20) if sizes == QUICK else (5, 200)))
        return {"sizes": sizes.__dict__, "rounds": rounds, "socket_floor_us": floor, "rows": [
            {"disk": row, "op": op,
             "daemon": statistics.median(samples[(row, op, "daemon")]),
             "direct": statistics.median(samples[(row, op, "direct")])}
            for row, *_ in ROWS for op in OPS]}
    finally:
        service.stop()
        shutil.rmtree(service.data_dir, ignore_errors=True)


def socket_floor_us(batches: int, per_batch: int) -> float:
    """Median µs, over ``batches`` of ``per_batch``, to move 1 MiB over a UNIX stream
    socket to a child process and get its 1-byte answer (module docs: the socket floor)."""
    ours, theirs = socket.socketpair()
    child = os.fork()
    if child == 0:  # the receiver: read each MiB whole, then answer
        ours.close()
        _receive_and_answer(theirs, batches * per_batch)
        os._exit(0)
    theirs.close()
    payload, answer, times = bytes(MB), bytearray(1), []
    try:
        for _ in range(batches):
            started = time.perf_counter()
            for _ in range(per_batch):
                ours.sendall(payload)
                ours.recv_into(answer, 1)
            times.append((time.perf_counter() - started) / per_batch * 1e6)
    finally:
        ours.close()
        os.waitpid(child, 0)
    return statistics.median(times)


def _receive_and_answer(sock: socket.socket, count: int) -> None:
    buffer = memoryview(bytearray(MB))
    for _ in range(count):
        got = 0
        while got < MB:
            size = sock.recv_into(buffer[got:])
            if size == 0:
                return
            got += size
        sock.sendall(b"x")


def start_vm(api: httpx.Client, name: str, iso: Path, slots: dict[str, Path]) -> Guest:
    created = api.post("/vms", json={"name": name, "memory_mb": 256, "dvd": str(iso)})
    if created.status_code != 201:
        raise BenchError(f"create {name}: {created.text}")
    for slot, path in slots.items():
        bus, location = slot.split()
        added = api.post(f"/vms/{name}/disks", json={"controller": bus, "location": location,
                                                     "path": str(path)})
        if added.status_code not in (200, 201):
            raise BenchError(f"add {path} to {name}: {added.text}")
    job = api.post(f"/vms/{name}/start", params={"wait": 30}).json()
    while job.get("state") in ("queued", "running"):
        job = api.get(f"/jobs/{job['id']}", params={"wait": 30}).json()
    if job.get("state") != "completed":
        raise BenchError(f"start {name}: {job}")
    guest = Guest(api, name)
    guest.wait_agent()
    return guest


def table(result: dict[str, Any]) -> str:
    lines = [f"{'disk':<22}  {'operation':<20}  {'daemon':>8}  {'direct':>8}  daemon/direct"]
    for row in result["rows"]:
        ratio = row["daemon"] / row["direct"] if row["direct"] else 0.0
        lines.append(f"{row['disk']:<22}  {row['op']:<20}  {row['daemon']:>8.1f}  "
                     f"{row['direct']:>8.1f}  {ratio:.2f}")
    floor = result["socket_floor_us"]
    lines += ["", f"socket floor: {floor:.0f} us per MiB (1 MiB to another process over a "
              "UNIX socket, 1-byte answer)",
              "best daemon/direct a socket transport allows at one request in flight:"]
    for row in result["rows"]:
        if row["op"] in OPS[:2] and row["direct"]:
            direct_us = 1e6 / row["direct"]  # MB/s here are MiB per second
            lines.append(f"{row['disk']:<22}  {row['op']:<20}  "
                         f"{direct_us / (direct_us + floor):.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one round, 4 MiB transfers, 8 random requests (smoke test)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON document")
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes(256, 200, 288)
    result = run(sizes, 1 if args.quick else args.rounds)
    print(json.dumps(result, indent=1) if args.json else table(result))


if __name__ == "__main__":
    main()
