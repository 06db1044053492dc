"""Checkpoint take, apply and delete under viridian, beside libvirt's snapshots of the same guest.

    .venv/bin/python bench/bench_checkpoints.py [--repeat N] [--quick] [--json]
                                                [--data-mb M] [--write-mb W]
                                                [--no-libvirt] [--no-libvirt-setup]

The guest (the same in both stacks): the guest kit's ISO in the IDE DVD drive (1:0),
256 MiB, 1 vCPU, TCG, and a 1 GiB qcow2 data disk at IDE 0:0 (``/dev/sda`` in the guest)
that holds ``--data-mb`` (default 400) MiB of data written with ``qemu-io`` beforehand.
Each *round* gives each stack a fresh copy of that disk and runs (timed steps marked T)::

    T take "off-1" (VM Off: disks only)
      start, boot to READY; the guest writes W MiB (dd from /dev/urandom, fsynced)
    T take "run-1" (Running: disks + memory, the guest runs on); the guest writes W MiB
    T take "run-2" (Running);                                    the guest writes W MiB
    T delete "run-1" while Running - the middle of off-1 -> run-1 -> run-2 -> Now, its
      layer holds W MiB of the guest's data (viridian merges it online, a block job)
    T apply "run-2" (the VM comes back Running from the checkpoint's memory)
      turn off
    T delete "run-2" while Off - the middle of off-1 -> run-2 -> Now
    T apply "off-1" while Off

then libvirt alone: ``snapshot-create-as --disk-only`` (an external snapshot, domain off),
``snapshot-revert`` and ``snapshot-delete`` of it. libvirt's side is driven with ``virsh``
(internal qcow2 snapshots unless ``--disk-only``: with the memory when the domain runs);
what libvirt 9.0 refuses is shown as "n/a" with libvirt's own error. viridian's side is
driven through the HTTP API (``?wait=60``, then the job is followed until it completed).
Every figure is the wall time from the request until the job (or virsh) finished; the table
shows medians over ``--repeat`` rounds (default 3). Rounds alternate between the stacks.

libvirt is set up by ``scripts/libvirt-setup.sh`` like bench/bench_lifecycle.py does; when
it cannot run, the bench says why and measures viridian alone. ``--quick``: one round, a
16 MiB prefill and 4 MiB guest writes (the smoke test runs this; every verb still runs on
both stacks). ``--json``: one JSON
document instead of the table. Progress goes to stderr. Everything made (VMs, domains,
snapshots, files) is removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the lifecycle_* modules

import lifecycle_libvirt
from lifecycle_common import READY, BenchError, Guest, wait_for_marker
from lifecycle_viridian import ViridianService

URI = "qemu:///system"
DISK_SIZE_MB = 1024
DOMAIN_PREFIX = "viridian-cpbench-"
JOB_TIMEOUT_S = 600.0
BOOT_TIMEOUT_S = 180.0
AGENT_TIMEOUT_S = 90.0
VIRIDIAN, LIBVIRT = "viridian", "libvirt"

Samples = dict[str, dict[str, list[float]]]  # stack → operation → seconds


@dataclass(frozen=True)
class Row:
    """One line of the table: a viridian operation beside its libvirt counterpart."""

    operation: str
    viridian: str  # key into viridian's samples
    libvirt: str  # key into libvirt's samples (and refusals)
    counterpart: str  # what libvirt does for it


ROWS = (
    Row("take, Off (disks only)", "take_off", "take_off", "internal snapshot-create-as, off"),
    Row(
        "take, Off (disks only)",
        "take_off",
        "take_off_ext",
        "external snapshot-create-as --disk-only, off",
    ),
    Row(
        "take, Running (+ memory)",
        "take_running",
        "take_running",
        "internal snapshot-create-as, running (savevm)",
    ),
    Row(
        "apply a Running checkpoint",
        "apply_running",
        "apply_running",
        "internal snapshot-revert (loadvm), comes back running",
    ),
    Row(
        "delete, Running, mid-chain",
        "delete_running",
        "delete_running",
        "internal snapshot-delete, running",
    ),
    Row("delete, Off, mid-chain", "delete_off", "delete_off", "internal snapshot-delete, off"),
    Row(
        "delete, Off, mid-chain",
        "delete_off",
        "delete_off_ext",
        "external snapshot-delete, off (its only snapshot)",
    ),
    Row("apply an Off checkpoint", "apply_off", "apply_off", "internal snapshot-revert, off"),
    Row("apply an Off checkpoint", "apply_off", "apply_off_ext", "external snapshot-revert, off"),
)

NOTE = """\
viridian: a checkpoint freezes each hard disk's current image and puts a new qcow2 overlay
above it (QEMU-native, whatever the base format); with the VM Running the memory and device
state go to a file (the guest pauses for that save, then runs on). Apply starts QEMU from the
frozen images under a fresh overlay (and loads the memory file). Delete merges the deleted
layer's data into what still needs it: online with QEMU block jobs (block-stream or an active
block-commit) while the VM runs, with qemu-img while it is Off; every step is journaled.
libvirt internal: a qcow2 internal snapshot inside the disk image (domain off: qemu-img
snapshot; running: savevm writes the memory into the qcow2 too, the VM paused throughout);
revert is loadvm / qemu-img snapshot -a, delete drops the snapshot's clusters (no data moves).
libvirt external (--disk-only): a qcow2 overlay made by libvirt; libvirt 9.0 cannot revert to
it; deleting it commits the overlay into its base."""


@dataclass(frozen=True)
class Options:
    repeat: int
    quick: bool
    json: bool
    libvirt: bool
    libvirt_setup: bool
    data_mb: int
    write_mb: int


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="rounds per stack; medians are reported (default 3)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="one round, 16 MiB prefill, 4 MiB writes (smoke test)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument(
        "--data-mb",
        type=int,
        default=None,
        metavar="M",
        help="MiB of data in the 1 GiB disk before a round (default 400)",
    )
    parser.add_argument(
        "--write-mb",
        type=int,
        default=None,
        metavar="W",
        help="MiB the guest writes before each running checkpoint (default 100)",
    )
    parser.add_argument("--no-libvirt", action="store_true", help="leave libvirt out")
    parser.add_argument(
        "--no-libvirt-setup",
        action="store_true",
        help="do not run scripts/libvirt-setup.sh; use libvirtd as it is",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, not {args.repeat}")
    data_mb = args.data_mb if args.data_mb is not None else (16 if args.quick else 400)
    write_mb = args.write_mb if args.write_mb is not None else (4 if args.quick else 100)
    if not (data_mb > 0 and write_mb > 0 and data_mb + 3 * write_mb <= DISK_SIZE_MB):
        parser.error(
            f"--data-mb ({data_mb}) and --write-mb ({write_mb}) must be positive with "
            f"data + 3 x write <= {DISK_SIZE_MB} MiB (the disk's size)"
        )
    return Options(
        repeat=1 if args.quick else args.repeat,
        quick=args.quick,
        json=args.json,
        libvirt=not args.no_libvirt,
        libvirt_setup=not args.no_libvirt_setup,
        data_mb=data_mb,
        write_mb=write_mb,
    )


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_tool(*argv: str, timeout: float = 600) -> str:
    """Run a host tool; its stdout, or BenchError with its last stderr line."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise BenchError(f"{argv[0]}: {last_error(done.stderr) or done.stdout.strip()}")
    return done.stdout


def last_error(stderr: str) -> str:
    """virsh prints 'error: Failed to X' then 'error: <why>': the why, without 'error: '."""
    lines = [line.removeprefix("error: ").strip() for line in stderr.splitlines()]
    return next((line for line in reversed(lines) if line), "")


def wait_marker(log: Path, marker: bytes = READY, timeout: float = BOOT_TIMEOUT_S) -> None:
    asyncio.run(wait_for_marker(log, marker, timeout))


def timed(samples: dict[str, list[float]], operation: str, action: Callable[[], object]) -> None:
    begin = time.perf_counter()
    action()
    samples.setdefault(operation, []).append(time.perf_counter() - begin)


def write_script(seek_mb: int, count_mb: int) -> str:
    """Shell for the guest: ``count_mb`` MiB of random data onto /dev/sda, fsynced."""
    return f"dd if=/dev/urandom of=/dev/sda bs=1M seek={seek_mb} count={count_mb} conv=fsync 2>&1"


# --- the data disk ---------------------------------------------------------------------


def make_data_disk(path: Path, data_mb: int) -> None:
    """A 1 GiB qcow2 holding ``data_mb`` MiB of allocated data (64 MiB runs, varied bytes)."""
    run_tool("qemu-img", "create", "-q", "-f", "qcow2", str(path), f"{DISK_SIZE_MB}M")
    commands: list[str] = []
    for index, start in enumerate(range(0, data_mb, 64)):
        size = min(64, data_mb - start)
        commands += ["-c", f"write -P {0x11 + index % 200} {start}M {size}M"]
    run_tool("qemu-io", "-f", "qcow2", *commands, str(path))


def copy_disk(source: Path, target: Path) -> Path:
    run_tool("cp", "--sparse=always", str(source), str(target))
    return target


# --- viridian ----------------------------------------------------------------------------


class ViridianRound:
    """One round on VM ``cpb-<n>`` of a running service, through its HTTP API."""

    def __init__(self, service: ViridianService, guest: Guest, disk: Path, index: int) -> None:
        token = (service.data_dir / "token").read_text().strip()
        self.api = httpx.Client(
            base_url=service.url + "/api/v1",
            timeout=JOB_TIMEOUT_S,
            headers={"Authorization": f"Bearer {token}"},
        )
        self.service = service
        self.guest = guest
        self.disk = disk
        self.vm = f"cpb-{index}"
        self.vm_id = ""
        self.memory_state_mb: list[float] = []  # size of each memory file measured

    def _memory_state_mb(self) -> float:
        """The largest memory-state file of this VM's checkpoints (the folder is a setting;
        this VM keeps the default, ``<VM folder>/checkpoints``), in MiB."""
        folder = Path(self._body(self.api.get(f"/vms/{self.vm}"), 200, "show VM")["folder"])
        sizes = [path.stat().st_size for path in (folder / "checkpoints").glob("*.vmstate")]
        return max(sizes, default=0) / 2**20

    def run(self, samples: dict[str, list[float]], options: Options) -> None:
        spec = {
            "name": self.vm,
            "memory_mb": self.guest.memory_mb,
            "processors": self.guest.processors,
            "dvd": str(self.guest.iso),
            "vhd": str(self.disk),
        }
        self.vm_id = self._body(self.api.post("/vms", json=spec), 201, "create VM")["id"]
        timed(samples, "take_off", lambda: self.take("off-1"))
        self._job(self.api.post(f"/vms/{self.vm}/start", params={"wait": 60}), "start")
        wait_marker(self.service.data_dir / "run" / self.vm_id / "com1.log")
        self.wait_agent()
        writes = iter(range(options.data_mb, DISK_SIZE_MB, options.write_mb))
        self.write(next(writes), options.write_mb)
        timed(samples, "take_running", lambda: self.take("run-1"))
        self.write(next(writes), options.write_mb)
        timed(samples, "take_running", lambda: self.take("run-2"))
        self.memory_state_mb.append(self._memory_state_mb())
        self.write(next(writes), options.write_mb)
        timed(samples, "delete_running", lambda: self.delete("run-1"))
        timed(samples, "apply_running", lambda: self.apply("run-2"))
        self._job(self.api.post(f"/vms/{self.vm}/stop", params={"wait": 60}), "stop")
        timed(samples, "delete_off", lambda: self.delete("run-2"))
        timed(samples, "apply_off", lambda: self.apply("off-1"))

    def take(self, name: str) -> None:
        reply = self.api.post(
            f"/vms/{self.vm}/checkpoints", json={"name": name}, params={"wait": 60}
        )
        self._job(reply, f"checkpoint {name}")

    def apply(self, name: str) -> None:
        reply = self.api.post(f"/vms/{self.vm}/checkpoints/{name}/apply", params={"wait": 60})
        self._job(reply, f"apply {name}")

    def delete(self, name: str) -> None:
        reply = self.api.delete(f"/vms/{self.vm}/checkpoints/{name}", params={"wait": 60})
        self._job(reply, f"delete {name}")

    def write(self, seek_mb: int, count_mb: int) -> None:
        argv = ["/bin/sh", "-c", write_script(seek_mb, count_mb)]
        reply = self.api.post(
            f"/vms/{self.vm}/integration/exec", json={"argv": argv, "timeout_s": 600}
        )
        body = self._body(reply, 200, "guest write")
        if body["exit_code"] != 0:
            raise BenchError(f"viridian guest dd failed: {base64.b64decode(body['stdout_b64'])!r}")

    def wait_agent(self) -> None:
        deadline = time.monotonic() + AGENT_TIMEOUT_S
        while True:
            reply = self.api.post(
                f"/vms/{self.vm}/integration/exec", json={"argv": ["/bin/true"], "timeout_s": 10}
            )
            if reply.status_code == 200:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"viridian guest agent does not answer: {reply.text}")
            time.sleep(0.5)

    def close(self) -> None:
        """Turn the VM off and remove it with its files (checkpoints included)."""
        try:
            if self.vm_id:
                self.api.post(f"/vms/{self.vm}/stop", params={"wait": 60})
                self.api.delete(f"/vms/{self.vm}", params={"delete_files": "true"})
        except httpx.HTTPError as err:
            say(f"viridian: clean-up of {self.vm} failed: {err}")
        finally:
            self.api.close()

    def _job(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """Follow the job a 202 answer started until it ended; BenchError unless completed."""
        job = self._body(response, 202, what)
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while job["state"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise BenchError(f"viridian {what}: job did not finish: {job}")
            job = self._body(
                self.api.get(f"/jobs/{job['id']}", params={"wait": 60}), 200, f"wait for {what}"
            )
        if job["state"] != "completed":
            raise BenchError(
                f"viridian {what}: job {job['state']}: {job.get('error')}\n"
                f"{self.service.log_tail()}"
            )
        return job

    @staticmethod
    def _body(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
        if response.status_code != status:
            raise BenchError(f"viridian {what}: HTTP {response.status_code} {response.text}")
        body: dict[str, Any] = response.json()
        return body


# --- libvirt -----------------------------------------------------------------------------


def virsh(*args: str) -> str:
    return run_tool("virsh", "-c", URI, *args)


def libvirt_domain_xml(guest: Guest, name: str, folder: Path, disk: Path) -> str:
    """bench_lifecycle's domain (viridian's command line in libvirt's words) + the data disk
    at IDE 0:0 as qcow2, as viridian attaches it."""
    data_disk = f"""    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='hda' bus='ide'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
"""
    anchor = "    <disk type='file' device='floppy'>"
    xml = lifecycle_libvirt.domain_xml(guest, name, folder)
    if anchor not in xml:
        raise BenchError("lifecycle_libvirt.domain_xml changed: no floppy disk to insert before")
    return xml.replace(anchor, data_disk + anchor)


class LibvirtRound:
    """One round on domain ``viridian-cpbench-<pid>-<n>``, through ``virsh``."""

    def __init__(self, guest: Guest, folder: Path, disk: Path, index: int) -> None:
        self.guest = guest
        self.folder = folder
        self.disk = disk
        self.domain = f"{DOMAIN_PREFIX}{os.getpid()}-{index}"
        self.defined = False

    def run(
        self, samples: dict[str, list[float]], refusals: dict[str, str], options: Options
    ) -> None:
        def attempt(operation: str, *args: str) -> None:
            """Time a snapshot verb; a refusal is recorded (n/a), not fatal."""
            try:
                timed(samples, operation, lambda: virsh(*args))
            except BenchError as err:
                refusals[operation] = str(err).removeprefix("virsh: ")
                say(f"libvirt {operation}: refused: {refusals[operation]}")

        xml_path = self.folder / "domain.xml"
        xml_path.write_text(libvirt_domain_xml(self.guest, self.domain, self.folder, self.disk))
        virsh("define", str(xml_path))
        self.defined = True
        dom = self.domain
        attempt("take_off", "snapshot-create-as", dom, "off-1")
        virsh("start", dom)
        wait_marker(self.folder / "com1.log")
        self.wait_agent()
        writes = iter(range(options.data_mb, DISK_SIZE_MB, options.write_mb))
        self.write(next(writes), options.write_mb)
        attempt("take_running", "snapshot-create-as", dom, "run-1")
        self.write(next(writes), options.write_mb)
        attempt("take_running", "snapshot-create-as", dom, "run-2")
        self.write(next(writes), options.write_mb)
        attempt("delete_running", "snapshot-delete", dom, "run-1")
        attempt("apply_running", "snapshot-revert", dom, "run-2")
        virsh("destroy", dom)
        attempt("delete_off", "snapshot-delete", dom, "run-2")
        attempt("apply_off", "snapshot-revert", dom, "off-1")
        with contextlib.suppress(BenchError):  # untimed: the external part starts clean
            virsh("snapshot-delete", dom, "off-1")
        overlay = f"hda,snapshot=external,file={self.folder / 'data.ext-1.qcow2'}"
        attempt(
            "take_off_ext", "snapshot-create-as", dom, "ext-1", "--disk-only", "--diskspec", overlay
        )
        attempt("apply_off_ext", "snapshot-revert", dom, "ext-1")
        attempt("delete_off_ext", "snapshot-delete", dom, "ext-1")

    def write(self, seek_mb: int, count_mb: int) -> None:
        """Run dd in the guest through libvirt's guest-agent pass-through; wait for its end."""
        command = {
            "execute": "guest-exec",
            "arguments": {
                "path": "/bin/sh",
                "arg": ["-c", write_script(seek_mb, count_mb)],
                "capture-output": True,
            },
        }
        pid = self._agent(command)["pid"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            status = self._agent({"execute": "guest-exec-status", "arguments": {"pid": pid}})
            if status.get("exited"):
                break
            if time.monotonic() > deadline:
                raise BenchError(f"libvirt guest dd did not finish in {JOB_TIMEOUT_S:g} s")
            time.sleep(0.2)
        if status.get("exitcode") != 0:
            out = base64.b64decode(status.get("out-data", "")).decode(errors="replace")
            raise BenchError(f"libvirt guest dd failed ({status.get('exitcode')}): {out}")

    def wait_agent(self) -> None:
        deadline = time.monotonic() + AGENT_TIMEOUT_S
        while True:
            try:
                self._agent({"execute": "guest-ping"})
                return
            except BenchError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _agent(self, command: dict[str, Any]) -> Any:
        answer = json.loads(virsh("qemu-agent-command", self.domain, json.dumps(command)))
        return answer["return"]

    def close(self) -> None:
        """Destroy and undefine the domain with its snapshot metadata; files go with the
        round's folder (removed by the caller)."""
        if not self.defined:
            return
        for args in (("destroy", self.domain), ("undefine", self.domain, "--snapshots-metadata")):
            subprocess.run(["virsh", "-c", URI, *args], capture_output=True, check=False)
        self.defined = False


def prepare_libvirt(options: Options, facts: dict[str, Any]) -> bool:
    """True when libvirt can be used; facts["libvirt"] says which version or why not."""
    info: dict[str, Any] = {"available": False}
    facts["libvirt"] = info
    if not options.libvirt:
        info["reason"] = "left out (--no-libvirt)"
        return False
    say("libvirt: setting up (scripts/libvirt-setup.sh)")
    reason = lifecycle_libvirt.prepare_libvirt(install=options.libvirt_setup)
    if reason is not None:
        info["reason"] = reason
        say(f"libvirt: not available, carrying on without it: {reason}")
        return False
    info.update(
        available=True,
        version=run_tool("virsh", "--version").strip(),
        driver="virsh CLI",
        virsh_overhead_ms=round(lifecycle_libvirt.virsh_overhead_s() * 1000, 1),
    )
    return True


# --- the run -----------------------------------------------------------------------------


def measure(
    guest: Guest, master: Path, workdir: Path, options: Options, facts: dict[str, Any]
) -> tuple[Samples, dict[str, str]]:
    """Alternate rounds; a failing libvirt is dropped (reason in facts), viridian is fatal."""
    samples: Samples = {VIRIDIAN: {}}
    refusals: dict[str, str] = {}
    use_libvirt = prepare_libvirt(options, facts)
    if use_libvirt:
        samples[LIBVIRT] = {}
    service = ViridianService()
    try:
        say(f"viridian: starting the service on {service.data_dir}")
        service.start()
        for index in range(options.repeat):
            folder = workdir / f"v{index}"
            folder.mkdir()
            disk = copy_disk(master, folder / "data.qcow2")
            round_ = ViridianRound(service, guest, disk, index)
            try:
                round_.run(samples[VIRIDIAN], options)
                facts.setdefault("viridian_memory_state_mb", []).extend(
                    round(mb, 1) for mb in round_.memory_state_mb
                )
            finally:
                round_.close()
                shutil.rmtree(folder, ignore_errors=True)
            say(f"[{index + 1}/{options.repeat}] viridian: {summary(samples[VIRIDIAN])}")
            if use_libvirt:
                use_libvirt = libvirt_round(
                    guest, master, workdir, index, samples, refusals, options, facts
                )
    finally:
        service.stop()
        shutil.rmtree(service.data_dir, ignore_errors=True)
    return samples, refusals


def libvirt_round(
    guest: Guest,
    master: Path,
    workdir: Path,
    index: int,
    samples: Samples,
    refusals: dict[str, str],
    options: Options,
    facts: dict[str, Any],
) -> bool:
    """One libvirt round; False (and libvirt dropped) when it failed outside a snapshot verb."""
    folder = workdir / f"l{index}"
    folder.mkdir()
    round_ = LibvirtRound(guest, folder, copy_disk(master, folder / "data.qcow2"), index)
    try:
        round_.run(samples[LIBVIRT], refusals, options)
    except (BenchError, subprocess.TimeoutExpired, KeyError, ValueError) as err:
        say(f"libvirt: failed, carrying on without it: {err}")
        facts["libvirt"].update(available=False, reason=f"failed during the run: {err}")
        del samples[LIBVIRT]
        return False
    finally:
        round_.close()
        shutil.rmtree(folder, ignore_errors=True)
    say(f"[{index + 1}/{options.repeat}] libvirt: {summary(samples[LIBVIRT])}")
    return True


def summary(samples: dict[str, list[float]]) -> str:
    return ", ".join(f"{op} {values[-1]:.2f}" for op, values in samples.items())


def guest_kit_iso() -> Path:
    from viridian.guestkit import build

    say("guest kit: building or finding the ISO")
    return build(progress=say).iso


def run(options: Options) -> dict[str, Any]:
    source = guest_kit_iso()
    workdir = Path(tempfile.mkdtemp(prefix="cpb-", dir="/tmp"))  # short: socket paths
    try:
        # A private copy: a newer guest kit build may prune the cached one during the run.
        guest = Guest(iso=Path(shutil.copy2(source, workdir / "guest.iso")))
        say(f"data disk: {DISK_SIZE_MB} MiB qcow2 with {options.data_mb} MiB of data")
        master = workdir / "master.qcow2"
        make_data_disk(master, options.data_mb)
        facts = run_facts(guest, source, options)
        samples, refusals = measure(guest, master, workdir, options, facts)
        facts["load_average_after"] = _load()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"rows": make_rows(samples, refusals), "samples": samples, "facts": facts}


def run_facts(guest: Guest, source: Path, options: Options) -> dict[str, Any]:
    qemu = run_tool("qemu-system-x86_64", "--version").splitlines()[0]
    return {
        "guest": {
            "iso": str(source),
            "memory_mb": guest.memory_mb,
            "processors": guest.processors,
            "accelerator": "tcg",
            "data_disk": {
                "format": "qcow2",
                "size_mb": DISK_SIZE_MB,
                "data_mb": options.data_mb,
                "guest_writes_mb": options.write_mb,
            },
        },
        "repeat": options.repeat,
        "quick": options.quick,
        "qemu": qemu,
        "host_cpus": os.cpu_count(),
        "load_average_before": _load(),
    }


def _load() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the host skews every figure."""
    return [round(value, 2) for value in os.getloadavg()]


# --- the report (pure) -------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    operation: str
    counterpart: str
    viridian_s: float | None
    libvirt_s: float | None
    ratio: float | None
    libvirt_refusal: str | None


def median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def make_rows(samples: Samples, refusals: dict[str, str]) -> list[Line]:
    lines = []
    for row in ROWS:
        ours = median(samples.get(VIRIDIAN, {}).get(row.viridian))
        theirs = median(samples.get(LIBVIRT, {}).get(row.libvirt))
        refusal = refusals.get(row.libvirt) if theirs is None else None
        ratio = ours / theirs if ours is not None and theirs else None
        lines.append(Line(row.operation, row.counterpart, ours, theirs, ratio, refusal))
    return lines


HEADER = ("operation", "viridian s", "libvirt s", "viridian/libvirt", "libvirt counterpart")


def table(lines: list[Line]) -> tuple[str, list[str]]:
    """The fixed-width table and its footnotes (libvirt's refusals, numbered)."""
    footnotes: list[str] = []
    cells = [HEADER]
    for line in lines:
        theirs = "-" if line.libvirt_s is None else f"{line.libvirt_s:.3f}"
        if line.libvirt_refusal is not None:
            footnotes.append(f"[{len(footnotes) + 1}] n/a (libvirt: {line.libvirt_refusal})")
            theirs = f"n/a [{len(footnotes)}]"
        cells.append(
            (
                line.operation,
                "-" if line.viridian_s is None else f"{line.viridian_s:.3f}",
                theirs,
                "-" if line.ratio is None else f"{line.ratio:.2f}x",
                line.counterpart,
            )
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
    text = "\n".join(
        "  ".join(
            cell.ljust(w) if i in (0, 4) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in cells
    )
    return text, footnotes


def print_report(result: dict[str, Any], options: Options) -> None:
    lines, samples, facts = result["rows"], result["samples"], result["facts"]
    if options.json:
        print(
            json.dumps(
                {
                    **facts,
                    "samples_s": {
                        stack: {op: [round(s, 4) for s in values] for op, values in ops.items()}
                        for stack, ops in samples.items()
                    },
                    "rows": [asdict(line) for line in lines],
                },
                indent=2,
            )
        )
        return
    guest, libvirt = facts["guest"], facts["libvirt"]
    disk = guest["data_disk"]
    peer = (
        f"libvirt {libvirt['version']} via virsh (start-up {libvirt['virsh_overhead_ms']:.1f}"
        " ms, included in its figures)"
        if libvirt["available"]
        else f"libvirt: not measured ({libvirt['reason']})"
    )
    print(
        f"guest: {guest['iso']} ({guest['memory_mb']} MiB, {guest['processors']} vCPU, TCG) + "
        f"{disk['size_mb']} MiB qcow2 data disk holding {disk['data_mb']} MiB; the guest "
        f"writes {disk['guest_writes_mb']} MiB before each running checkpoint and after the "
        f"last; {facts['qemu']}; {peer}"
    )
    print(
        f"medians of {options.repeat} round(s), seconds from request until done; "
        f"{facts['host_cpus']} CPUs, load average {facts['load_average_before'][0]} before, "
        f"{facts['load_average_after'][0]} after"
    )
    if facts.get("viridian_memory_state_mb"):
        print(
            f"memory state of a Running checkpoint (viridian's file): "
            f"{median(facts['viridian_memory_state_mb']):.1f} MiB (median)"
        )
    text, footnotes = table(lines)
    print(text)
    for footnote in footnotes:
        print(footnote)
    print(NOTE)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    print_report(run(options), options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
