"""Provisioning VMs from a template: viridian beside a hand-scripted baseline.

    .venv/bin/python bench/bench_provision.py [--counts 1,10,20] [--quick] [--json]

viridian: ``POST /provision`` of N VMs (qcow2 overlays over the template's disk, a
cloud-init seed each, started) until the last vm object shows "provisioned: ready".
Baseline (the issue's ``qemu-img create -b`` + ``virt-install --import`` by hand): per VM
``qemu-img create -f qcow2 -b``, the same seed files made into a ``cidata`` ISO with
xorriso, a plain ``qemu-system-x86_64`` with the same guest, memory and devices, until
its serial log shows the guest kit's ``SEED-DONE`` (the same moment: its run commands,
the last of which writes the ready file, are done). The guest: the guest kit's bootable
raw disk, 128 MiB, TCG; the service's admission allows 32 virtual processors per logical
processor (20 VMs on 2 processors). Also printed: disk space used per provisioned VM
(allocated blocks of its folder). ``--quick``: N = 1 only (the smoke test). Progress on
stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from viridian.guestkit import build
from viridian.library.cloudinit import Customisation, numbered, seed_files

MEMORY_MB = 128
LIMIT_S = 900.0
CPU_GROUPS = Path("/sys/fs/cgroup/cpu/viridian")  # cgroup v1 cpu: where viridian's VMs run


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    def __init__(self, data: Path) -> None:
        self.port = free_port()
        data.mkdir(parents=True, exist_ok=True)
        # 20 one-processor VMs on a 2-processor host: past the default admission ratio (8)
        (data / "host.json").write_text(json.dumps({"virtual_processor_ratio": 32}))
        env = {**os.environ, "VIRIDIAN_ACCELERATOR": "tcg"}
        self.log = open(data / "serve.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "viridian.cli.main", "serve", "--data-dir", str(data),
             "--listen", f"127.0.0.1:{self.port}"], stdout=self.log, stderr=self.log,
            env=env, start_new_session=True)
        url = f"http://127.0.0.1:{self.port}/api/v1"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/host", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the service did not start") from None
                time.sleep(0.1)
        token = (data / "token").read_text().strip()
        self.api = httpx.Client(base_url=url, timeout=120,
                                headers={"Authorization": f"Bearer {token}"})

    def job(self, answer: httpx.Response) -> dict[str, Any]:
        assert answer.status_code == 202, answer.text
        job = answer.json()
        while job["state"] in ("queued", "running"):
            job = self.api.get(f"/jobs/{job['id']}", params={"wait": 30}).json()
        assert job["state"] == "completed", job
        return dict(job)

    def clean(self) -> None:
        for vm in self.api.get("/vms").json()["vms"]:
            if vm["pid"]:
                self.api.post(f"/vms/{vm['name']}/stop", params={"wait": 60})
        for vm in self.api.get("/vms").json()["vms"]:
            if vm["name"] != "src":
                self.api.delete(f"/vms/{vm['name']}", params={"delete_files": "true"})

    def stop(self) -> None:
        try:
            self.clean()
        finally:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
            self.log.close()


def used_bytes(folder: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def viridian_run(service: Service, data: Path, count: int) -> dict[str, float]:
    names = [f"v{count}"] if count == 1 else [f"v{count}-{i}" for i in range(1, count + 1)]
    start = time.monotonic()
    service.job(service.api.post("/provision", json={
        "template": "base", "name": f"v{count}", "count": count, "memory_mb": MEMORY_MB}))
    while time.monotonic() - start < LIMIT_S:
        shown = [service.api.get(f"/vms/{n}").json().get("provisioning") for n in names]
        if all(s == "provisioned: ready" for s in shown):
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"viridian: not all ready: {shown}")
    elapsed = time.monotonic() - start
    per_vm = used_bytes(data / "provisioned") / count
    service.clean()
    return {"seconds": elapsed, "bytes_per_vm": per_vm}


def baseline_run(disk: Path, work: Path, count: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="base-", dir=work))
    processes: list[subprocess.Popen[bytes]] = []
    groups: list[Path | None] = []
    start = time.monotonic()
    try:
        for index in range(1, count + 1):
            vm = folder / str(index)
            (vm / "seed").mkdir(parents=True)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(disk), "-F",
                            "raw", str(vm / "disk.qcow2")], check=True)
            custom = numbered(Customisation("i", "b"), index, count, f"iid-{index}")
            for name, text in seed_files(custom).as_files().items():
                (vm / "seed" / name).write_text(text)
            subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-volid", "cidata",
                            "-joliet", "-rock", "-output", str(vm / "seed.iso"),
                            *map(str, sorted((vm / "seed").iterdir()))],
                           check=True, capture_output=True)
            processes.append(subprocess.Popen([
                "qemu-system-x86_64", "-accel", "tcg", "-m", str(MEMORY_MB), "-nodefaults",
                "-display", "none", "-serial", f"file:{vm / 'serial.log'}",
                "-drive", f"if=ide,index=0,format=qcow2,file={vm / 'disk.qcow2'}",
                "-drive", f"if=ide,index=2,media=cdrom,format=raw,readonly=on,"
                          f"file={vm / 'seed.iso'}",
                "-device", "virtio-serial-pci", "-chardev",
                f"socket,id=qga,path={vm / 'qga.sock'},server=on,wait=off",
                "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0"],
                stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            groups.append(_cpu_group(processes[-1].pid, index))
        logs = [folder / str(i) / "serial.log" for i in range(1, count + 1)]
        while time.monotonic() - start < LIMIT_S:
            if all(b"SEED-DONE" in _read(log) for log in logs):
                break
            time.sleep(0.2)
        else:
            late = {i: _last_marker(log) for i, log in enumerate(logs, start=1)
                    if b"SEED-DONE" not in _read(log)}
            say(f"baseline: not every guest finished its seed in {LIMIT_S:.0f} s: {late}")
            return {"seconds": float("nan"), "bytes_per_vm": float("nan")}
        elapsed = time.monotonic() - start
        per_vm = sum(used_bytes(folder / str(i)) - (folder / str(i) / "serial.log").stat()
                     .st_blocks * 512 for i in range(1, count + 1)) / count
        return {"seconds": elapsed, "bytes_per_vm": per_vm}
    finally:
        for process in processes:
            process.kill()
            process.wait()
        for group in groups:
            if group is not None:
                group.rmdir()
        shutil.rmtree(folder, ignore_errors=True)


def _cpu_group(pid: int, index: int) -> Path | None:
    """Put a baseline QEMU in a cpu cgroup of its own beside viridian's VMs (same weight,
    1024 shares), so both sides get the same share of a loaded host's CPU; None where
    there is no cgroup v1 ``viridian`` cpu group."""
    if not CPU_GROUPS.is_dir():
        return None
    group = CPU_GROUPS / f"bench-baseline-{os.getpid()}-{index}"
    group.mkdir(exist_ok=True)
    (group / "cgroup.procs").write_text(str(pid))
    return group


def _last_marker(log: Path) -> str:
    """The last line of a serial log that is not a TICK (where a guest stopped)."""
    lines = [line for line in _read(log).decode(errors="replace").splitlines()
             if line.strip() and "TICK" not in line]
    return lines[-1][-160:] if lines else "(nothing on the serial port)"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,10,20")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [1] if args.quick else [int(c) for c in args.counts.split(",")]
    work = Path(tempfile.mkdtemp(prefix="vir-bp-", dir="/tmp"))
    disk = work / "boot.img"
    shutil.copyfile(build().raw, disk)
    service = Service(work / "data")
    report: dict[str, Any] = {"memory_mb": MEMORY_MB, "runs": []}
    try:
        assert service.api.post("/vms", json={"name": "src", "vhd": str(disk)}
                                ).status_code == 201
        template = service.job(service.api.post("/templates", json={
            "name": "base", "vm": "src"}))["result"]
        for count in counts:
            say(f"viridian: {count} VM(s)")
            ours = viridian_run(service, work / "data", count)
            say(f"baseline: {count} VM(s)")
            theirs = baseline_run(Path(template["disks"][0]["path"]), work, count)
            say(f"  {count}: viridian {ours['seconds']:.1f} s, baseline "
                f"{theirs['seconds']:.1f} s")
            report["runs"].append({"count": count, "viridian_s": ours["seconds"],
                                   "baseline_s": theirs["seconds"],
                                   "ratio": ours["seconds"] / theirs["seconds"],
                                   "viridian_bytes_per_vm": ours["bytes_per_vm"],
                                   "baseline_bytes_per_vm": theirs["bytes_per_vm"]})
    finally:
        service.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'VMs':>4} {'viridian s':>11} {'baseline s':>11} {'ratio':>6} "
          f"{'KiB/VM ours':>12} {'KiB/VM base':>12}")
    for run in report["runs"]:
        print(f"{run['count']:>4} {run['viridian_s']:>11.1f} {run['baseline_s']:>11.1f} "
              f"{run['ratio']:>6.2f} {run['viridian_bytes_per_vm'] / 1024:>12.0f} "
              f"{run['baseline_bytes_per_vm'] / 1024:>12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
