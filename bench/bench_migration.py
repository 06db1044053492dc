"""Moving a running guest between hosts: viridian's quick and live moves beside bare
QEMU-to-QEMU live migration (and ``virsh migrate --live`` where libvirt can run it).

    .venv/bin/python bench/bench_migration.py [--repeat N] [--quick] [--json] [--no-virsh]

The guest: the guest kit's ISO, 256 MiB, 1 vCPU, TCG — the same command line for both
stacks (viridian's renderer). Two viridian services on this machine (own data folders and
ports) move one VM back and forth over loopback (shared storage: the ISO); the bare peer
is two QEMU processes, the target started with ``-incoming defer``, driven through QMP
with the same migration settings (auto-converge on, bandwidth unlimited).

Measured per move (medians of ``--repeat``, default 3):

- quick move: downtime = the job's ``downtime_ms`` (save start → the target's restore
  ran), goal ≤ 1.0 s;
- shared-nothing live move (``with_storage``; a 1 GiB qcow2 data disk holding 64 MiB):
  QEMU's total (memory only; the disk copy before it is in the job's time) and downtime;
- live move idle and under a memory-dirtying load (the guest rewrites 64 MiB in a loop):
  QEMU's ``total-time`` and ``downtime``, and the switch-over (viridian: the target's
  commit — ownership hand-over, registration, ``cont``; bare: ``cont`` alone). Goal:
  downtime ≤ 100 ms idle. The guest is paused for downtime + switch-over.

``virsh migrate --live`` needs a second libvirt host: libvirt refuses a migration to the
host it runs on (same host UUID); the bench tries it when libvirt answers and prints the
refusal. ``--quick`` (the smoke test): one repetition, the data disk holding 8 MiB and a
16 MiB dirtying loop (every move and both peers still run). ``--json``: one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpcore  # noqa: F401 - imported here, not first from deep in the event loop: anyio's
import httpx  # lazy importer compiles ASTs and CPython 3.11.7 trips on a deep stack there

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the lifecycle_* modules

from lifecycle_common import BenchError, Guest, wait_for_marker
from lifecycle_qemu import QemuProcess, guest_argv
from lifecycle_viridian import ViridianService
from viridian.qemu.runtime_paths import RuntimePaths

VM = "bench-move"


@dataclass(frozen=True)
class Workload:
    """What the moves carry: MiB written into the data disk beforehand, MiB the guest's
    dirtying loop rewrites (the same in both stacks)."""

    disk_mb: int
    dirty_mb: int

    def load_script(self) -> str:
        """Shell for the guest: the dirtying loop, in the background."""
        return (f"(while :; do dd if=/dev/zero of=/tmp/dirty bs=1M count={self.dirty_mb} "
                "conv=notrunc 2>/dev/null; done) >/dev/null 2>&1 &")


FULL, QUICK = Workload(disk_mb=64, dirty_mb=64), Workload(disk_mb=8, dirty_mb=16)
MIB = 1024 * 1024
Samples = dict[str, list[float]]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- viridian ---------------------------------------------------------------------


class ViridianPair:
    """Two services and the VM that moves between them."""

    def __init__(self, guest: Guest, work: Workload) -> None:
        self.guest = guest
        self.work = work
        self.services = [ViridianService(), ViridianService()]
        self.clients: list[httpx.Client] = []
        self.here = 0

    def __enter__(self) -> ViridianPair:
        try:
            for service in self.services:
                service.start()
                token = (service.data_dir / "token").read_text().strip()
                self.clients.append(httpx.Client(base_url=service.url + "/api/v1",
                                                 timeout=600,
                                                 headers={"Authorization": f"Bearer {token}"}))
        except BaseException:
            self._end_services()  # never leave a started service behind
            raise
        return self

    def __exit__(self, *_: object) -> None:
        try:
            for client in self.clients:
                for vm in client.get("/vms").json()["vms"]:
                    if vm["pid"]:
                        self._job(client, client.post(f"/vms/{vm['name']}/stop"))
                client.close()
        finally:
            self._end_services()

    def _end_services(self) -> None:
        """Stop both services (and whatever QEMU they left) and remove their data folders
        (the data disk included)."""
        for service in self.services:
            try:
                service.stop()
            finally:
                shutil.rmtree(service.data_dir, ignore_errors=True)

    @staticmethod
    def _job(client: httpx.Client, reply: httpx.Response) -> dict[str, Any]:
        if reply.status_code != 202:
            raise BenchError(reply.text)
        job = reply.json()
        while job["state"] in ("queued", "running"):
            job = client.get(f"/jobs/{job['id']}", params={"wait": 30}).json()
        if job["state"] != "completed":
            raise BenchError(f"{job['kind']} {job['state']}: {job['error']}")
        return job  # type: ignore[no-any-return]

    async def boot(self) -> None:
        api = self.clients[0]
        disk = self.services[0].data_dir / "data.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1G"],
                       check=True)
        subprocess.run(["qemu-io", "-f", "qcow2", "-c",
                        f"write -P 0x5a 0 {self.work.disk_mb}M", str(disk)],
                       check=True, capture_output=True)
        created = api.post("/vms", json={"name": VM, "memory_mb": self.guest.memory_mb,
                                         "dvd": str(self.guest.iso), "vhd": str(disk)})
        if created.status_code != 201:
            raise BenchError(created.text)
        self._job(api, api.post(f"/vms/{VM}/start"))
        run = self.services[0].data_dir / "run" / created.json()["id"] / "com1.log"
        await wait_for_marker(run)

    def move(self, mode: str, with_storage: bool = False) -> dict[str, Any]:
        """Move the VM to the other service; the job's result."""
        there = 1 - self.here
        target = self.services[there]
        token = (target.data_dir / "token").read_text().strip()
        body: dict[str, Any] = {"to": target.url, "token": token, "mode": mode}
        if with_storage:
            body["with_storage"] = True
        job = self._job(self.clients[self.here], self.clients[self.here].post(
            f"/vms/{VM}/move", json=body))
        self.here = there
        return job["result"]  # type: ignore[no-any-return]

    def load(self) -> None:
        """Start the memory-dirtying loop in the guest (through its agent)."""
        api = self.clients[self.here]
        deadline = time.monotonic() + 60
        while True:
            reply = api.post(f"/vms/{VM}/integration/exec",
                             json={"argv": ["/bin/sh", "-c", self.work.load_script()],
                                   "timeout_s": 30})
            if reply.status_code == 200 and reply.json()["exit_code"] == 0:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"the guest agent did not run the load: {reply.text}")
            time.sleep(0.5)


async def run_viridian(guest: Guest, repeat: int, work: Workload) -> Samples:
    samples: Samples = {}
    with ViridianPair(guest, work) as pair:
        await pair.boot()
        for _ in range(repeat):
            quick = pair.move("quick")
            samples.setdefault("quick downtime", []).append(quick["downtime_ms"])
            log(f"viridian quick: {quick}")
        for _ in range(repeat):
            copied = pair.move("live", with_storage=True)
            log(f"viridian live with storage: {copied}")
            samples.setdefault("with-storage total", []).append(copied["total_ms"])
            samples.setdefault("with-storage downtime", []).append(copied["downtime_ms"])
        for label in ("idle", "load"):
            if label == "load":
                pair.load()
            for _ in range(repeat):
                live = pair.move("live")
                log(f"viridian live {label}: {live}")
                _live_samples(samples, label, live["total_ms"], live["downtime_ms"],
                              live["commit_ms"])
    return samples


def _live_samples(samples: Samples, label: str, total: float, downtime: float,
                  switch: float) -> None:
    samples.setdefault(f"live {label} total", []).append(total)
    samples.setdefault(f"live {label} downtime", []).append(downtime)
    samples.setdefault(f"live {label} switch-over", []).append(switch)
    samples.setdefault(f"live {label} guest paused", []).append(downtime + switch)


# --- bare QEMU --------------------------------------------------------------------


class BarePair:
    """Two QEMU processes: the running one and, per move, a fresh incoming one."""

    def __init__(self, guest: Guest, workdir: Path, work: Workload) -> None:
        self.guest = guest
        self.workdir = workdir
        self.work = work
        self.vm_id = str(uuid.uuid4())
        self.count = 0
        self.running: QemuProcess | None = None

    def _spawn(self, incoming: bool) -> QemuProcess:
        self.count += 1
        paths = RuntimePaths(self.workdir / f"q{self.count}")
        paths.folder.mkdir(mode=0o700)
        return QemuProcess(guest_argv(self.guest, VM, self.vm_id, paths, incoming=incoming),
                           paths)

    async def boot(self) -> None:
        self.running = self._spawn(incoming=False)
        await self.running.connect()
        await self.running.run("cont")
        await wait_for_marker(self.running.paths.folder / "com1.log")

    async def move(self) -> tuple[float, float, float]:
        """Live-migrate to a fresh QEMU: (total ms, downtime ms, cont ms)."""
        source = self.running
        assert source is not None
        target = self._spawn(incoming=True)
        try:
            await target.connect()
            uri = f"tcp:127.0.0.1:{_free_port()}"
            await target.run("migrate-set-capabilities", capabilities=[
                {"capability": "events", "state": True}])
            await target.run("migrate-incoming", uri=uri)
            await source.run("migrate-set-capabilities", capabilities=[
                {"capability": "events", "state": True},
                {"capability": "auto-converge", "state": True}])
            await source.run("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
            info = await _migrate(source, uri)
            started = time.monotonic()
            while (await target.run("query-migrate")).get("status") != "completed":  # type: ignore[union-attr]
                await asyncio.sleep(0.001)
            await target.run("cont")
            switch = (time.monotonic() - started) * 1000
            info = await _figures(source)
        except BaseException:
            target.kill()
            raise
        await source.quit()
        self.running = target
        return float(info["total-time"]), float(info["downtime"]), switch

    async def load(self) -> None:
        """The same dirtying loop, through the guest agent's socket (asked again every
        5 s until it answers: a migrated guest's agent may miss the first request)."""
        assert self.running is not None
        request = {"execute": "guest-exec", "arguments": {
            "path": "/bin/sh", "arg": ["-c", self.work.load_script()],
            "capture-output": False}}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            reader, writer = await asyncio.open_unix_connection(
                str(self.running.paths.guest_agent_socket))
            try:
                writer.write(json.dumps(request).encode() + b"\n")
                await writer.drain()
                if b"return" in await asyncio.wait_for(reader.readline(), 5):
                    return
            except TimeoutError:
                pass
            finally:
                writer.close()
        raise BenchError("the bare guest's agent did not start the load")

    def close(self) -> None:
        if self.running is not None:
            self.running.kill()


async def _migrate(source: QemuProcess, uri: str) -> dict[str, Any]:
    with source.qmp.listener("MIGRATION") as listener:
        await source.run("migrate", uri=uri)
        async for event in listener:
            status = event["data"]["status"]
            if status in ("completed", "failed", "cancelled"):
                break
    info: Any = await source.run("query-migrate")
    if info.get("status") != "completed":
        raise BenchError(f"bare migration ended {info.get('status')}: {info}")
    return info  # type: ignore[no-any-return]


async def _figures(source: QemuProcess) -> dict[str, Any]:
    """QEMU computes total-time and downtime just after it reports ``completed``."""
    for _ in range(400):
        info: Any = await source.run("query-migrate")
        if info.get("total-time"):
            break
        await asyncio.sleep(0.005)
    return info  # type: ignore[no-any-return]


async def run_bare(guest: Guest, repeat: int, work: Workload) -> Samples:
    samples: Samples = {}
    with tempfile.TemporaryDirectory(prefix="vir-bare-", dir="/tmp") as workdir:
        pair = BarePair(guest, Path(workdir), work)
        try:
            await pair.boot()
            for label in ("idle", "load"):
                if label == "load":
                    await pair.load()
                for _ in range(repeat):
                    total, downtime, switch = await pair.move()
                    log(f"bare live {label}: total {total} downtime {downtime} cont {switch:.1f}")
                    _live_samples(samples, label, total, downtime, switch)
        finally:
            pair.close()
    return samples


# --- virsh ------------------------------------------------------------------------


def virsh_reason() -> str:
    """Why ``virsh migrate --live`` is not measured here (libvirt's own words if it ran)."""
    try:
        done = subprocess.run(["virsh", "-c", "qemu:///system", "uri"], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"virsh not usable: {err}"
    if done.returncode != 0:
        return f"libvirt does not answer: {done.stderr.strip()[:200]}"
    return ("not tried: libvirt answers, but it refuses a migration to the host it runs on "
            "(the target must have another host UUID), so it needs a second machine")


# --- report -----------------------------------------------------------------------


def table(viridian: Samples, bare: Samples) -> str:
    rows = [f"{'measure':<28}{'viridian ms':>13}{'bare QEMU ms':>14}{'ratio':>8}"]
    for key in viridian:
        mine = statistics.median(viridian[key])
        peer = statistics.median(bare[key]) if key in bare else None
        ratio = f"{mine / peer:.2f}" if peer else "-"
        rows.append(f"{key:<28}{mine:>13.1f}{(f'{peer:.1f}' if peer is not None else '-'):>14}"
                    f"{ratio:>8}")
    return "\n".join(rows)


def goals(viridian: Samples) -> list[str]:
    quick = statistics.median(viridian["quick downtime"])
    idle = statistics.median(viridian["live idle downtime"])
    return [f"quick downtime {quick:.0f} ms (goal <= 1000): {'met' if quick <= 1000 else 'MISSED'}",
            f"live idle downtime {idle:.0f} ms (goal <= 100): {'met' if idle <= 100 else 'MISSED'}"]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-virsh", action="store_true")
    args = parser.parse_args()
    repeat, work = (1, QUICK) if args.quick else (args.repeat, FULL)
    from viridian.guestkit import build

    guest = Guest(build().iso)
    bare = await run_bare(guest, repeat, work)
    viridian = await run_viridian(guest, repeat, work)
    virsh = "not tried (--no-virsh)" if args.no_virsh or args.quick else virsh_reason()
    if args.json:
        print(json.dumps({"workload_mb": asdict(work), "viridian": viridian,
                          "bare_qemu": bare, "virsh": virsh,
                          "goals": goals(viridian)}, indent=2))
        return
    print(table(viridian, bare))
    for line in goals(viridian):
        print(line)
    print(f"virsh migrate --live: {virsh}")


if __name__ == "__main__":
    asyncio.run(main())
