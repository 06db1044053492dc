"""Backup throughput and restore time of viridian, beside ``qemu-img convert`` of the same
data and a sparse ``cp`` (the floor: no format work at all).

    .venv/bin/python bench/bench_backup.py [--quick] [--size-mb N] [--json]

A VM boots from the guest kit's VHD (served by its storage daemon) with a dynamic VHDX
data disk of ``--size-mb`` (default 2048) MiB, half of it written with ``qemu-io``
beforehand. With the guest running (timed steps marked T):

    T backup new VM --to DIR                 (full, live: point in time, local staging,
                                              copy to the target, checksums)
      the guest overwrites 10 % of the disk (dd, fsynced)
    T backup new VM --to DIR --incremental   (only the dirty bitmap's blocks)
      peers, on the same image files (read shared while the VM runs):
    T qemu-img convert -O qcow2 of the boot VHD and the data VHDX
    T cp --sparse=always of both files
      the VM is turned off
    T backup restore ID --as NAME (the job), then T start until the guest prints READY

Throughput is the data of the disks (allocated bytes of the source images) over the
wall time; ratios are viridian/peer time. The peers' copies are synced (``sync FILE``)
like a point, whose files are fsynced before it is published; a point also computes its
SHA-256 manifest. ``--quick``: a 32 MiB data disk (the smoke test; every step still
runs, on 16 MiB of data plus the boot disk's).
Everything made is removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lifecycle_common import READY, BenchError
from lifecycle_viridian import ViridianService

MB = 1 << 20
VM = "bench-backup"
QUICK_SIZE_MB = 32
"""``--quick``'s data disk: small, and not the boot disk's 64 MiB (the guest finds the data
disk by its size)."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _client(service: ViridianService) -> httpx.Client:
    token = (service.data_dir / "token").read_text().strip()
    return httpx.Client(base_url=service.url + "/api/v1", timeout=120,
                        headers={"Authorization": f"Bearer {token}"})


def _job(api: httpx.Client, response: httpx.Response, timeout: float = 1800) -> Any:
    if response.status_code != 202:
        raise BenchError(f"{response.request.url}: {response.status_code} {response.text}")
    job = response.json()
    deadline = time.monotonic() + timeout
    while job["state"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise BenchError(f"job {job['id']} did not end")
        job = api.get(f"/jobs/{job['id']}", params={"wait": 30}).json()
    if job["state"] != "completed":
        raise BenchError(f"job {job['kind']} {job['state']}: {job.get('error')}")
    return job["result"]


def _act(api: httpx.Client, vm: str, action: str) -> None:
    _job(api, api.post(f"/vms/{vm}/{action}", params={"wait": 30}))


def _wait_ready(service: ViridianService, vm_id: str, timeout: float = 240) -> None:
    log = service.data_dir / "run" / vm_id / "com1.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if READY in log.read_bytes():
                return
        time.sleep(0.1)
    raise BenchError(f"{READY.decode()} not seen in {log}")


def _sh(api: httpx.Client, vm: str, script: str) -> str:
    deadline = time.monotonic() + 120
    while True:
        reply = api.post(f"/vms/{vm}/integration/exec",
                         json={"argv": ["/bin/sh", "-c", script], "timeout_s": 600})
        if reply.status_code == 200 and reply.json()["exit_code"] == 0:
            return base64.b64decode(reply.json()["stdout_b64"]).decode(errors="replace")
        if time.monotonic() > deadline:
            raise BenchError(f"guest command failed: {reply.text[:500]}")
        time.sleep(0.5)


def _allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def _timed(step: str, run: Any) -> float:
    _log(f"  {step} …")
    began = time.monotonic()
    run()
    took = time.monotonic() - began
    _log(f"  {step}: {took:.2f} s")
    return took


def _peers(files: list[Path], out: Path) -> tuple[float, float]:
    def convert() -> None:
        for index, path in enumerate(files):
            fmt = "vpc" if path.suffix == ".vhd" else "vhdx"
            target = out / f"convert-{index}.qcow2"
            subprocess.run(["qemu-img", "convert", "-U", "-f", fmt, "-O", "qcow2", str(path),
                            str(target)], check=True)
            subprocess.run(["sync", str(target)], check=True)  # durable, as a point is

    def copy() -> None:
        for index, path in enumerate(files):
            subprocess.run(["cp", "--sparse=always", str(path), str(out / f"cp-{index}")],
                           check=True)
            subprocess.run(["sync", str(out / f"cp-{index}")], check=True)
    return _timed("qemu-img convert", convert), _timed("cp --sparse=always", copy)


def run(size_mb: int) -> dict[str, Any]:
    from viridian.guestkit import build

    work = Path(tempfile.mkdtemp(prefix="bench-backup-", dir="/var/tmp"))
    service = ViridianService()
    api: httpx.Client | None = None
    try:
        boot, data = work / "boot.vhd", work / "data.vhdx"
        shutil.copyfile(build().vhd, boot)
        subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic",
                        str(data), f"{size_mb}M"], check=True)
        half = size_mb // 2
        subprocess.run(["qemu-io", "-f", "vhdx", "-c", f"write -P 0x5c 0 {half}M", str(data)],
                       check=True, capture_output=True)
        (work / "target").mkdir()
        (work / "peers").mkdir()
        service.start()
        api = _client(service)
        created = api.post("/vms", json={"name": VM, "memory_mb": 256, "vhd": str(boot)})
        if created.status_code != 201:
            raise BenchError(created.text)
        vm_id = created.json()["id"]
        added = api.post(f"/vms/{VM}/disks", json={"controller": "scsi", "location": "0:0",
                                                    "path": str(data)})
        if added.status_code not in (200, 201):
            raise BenchError(added.text)
        _act(api, VM, "start")
        _wait_ready(service, vm_id)
        source = _allocated(boot) + _allocated(data)
        _log(f"disks: {source / MB:.0f} MiB of data ({size_mb} MiB data disk, half full)")
        body = {"vm": VM, "target": str(work / "target")}
        points: list[dict[str, Any]] = []
        full_s = _timed("viridian full backup", lambda: points.append(
            _job(api, api.post("/backups", json=body))))
        changed = size_mb // 10
        dev = (f"$(for b in /sys/block/sd*; do [ $(cat $b/size) -eq {size_mb * 2048} ] && "
               "echo /dev/${b##*/}; done)")
        _sh(api, VM, f"dd if=/dev/urandom of={dev} bs=1M count={changed} seek={half // 2} "
                     "conv=fsync 2>/dev/null")
        inc_s = _timed("viridian incremental backup", lambda: points.append(
            _job(api, api.post("/backups", json={**body, "incremental": True}))))
        if points[1]["kind"] != "incremental":
            raise BenchError(f"second point is {points[1]['kind']}: {points[1]['reason']}")
        convert_s, cp_s = _peers([boot, data], work / "peers")
        restored: dict[str, Any] = {}
        _act(api, VM, "stop")  # the restored guest boots alone, as after a loss

        def restore() -> None:
            restored.update(_job(api, api.post(f"/backups/{points[1]['id']}/restore",
                                               json={"name": "bench-restored"})))
        restore_job_s = _timed("restore job (disks written, VM registered)", restore)

        def boot() -> None:
            _act(api, "bench-restored", "start")
            _wait_ready(service, restored["id"])
        restore_s = restore_job_s + _timed("start of the restored VM until READY", boot)
        return {"size_mb": size_mb, "data_mib": round(source / MB, 1),
                "changed_mib": changed, "full_s": round(full_s, 2),
                "incremental_s": round(inc_s, 2), "convert_s": round(convert_s, 2),
                "cp_s": round(cp_s, 2), "restore_job_s": round(restore_job_s, 2),
                "restore_boot_s": round(restore_s, 2),
                "full_phases_s": points[0]["timings_s"],
                "incremental_phases_s": points[1]["timings_s"],
                "full_written_mib": round(points[0]["bytes_written"] / MB, 1),
                "incremental_written_mib": round(points[1]["bytes_written"] / MB, 1)}
    finally:
        _clean(service, api, work)


def _clean(service: ViridianService, api: httpx.Client | None, work: Path) -> None:
    if api is not None:
        with contextlib.suppress(Exception):
            for vm in api.get("/vms").json()["vms"]:
                with contextlib.suppress(Exception):
                    api.post(f"/vms/{vm['name']}/stop", params={"wait": 30})
                with contextlib.suppress(Exception):
                    api.delete(f"/vms/{vm['name']}", params={"delete_files": "true"})
        api.close()
    service.stop()
    for pid_file in service.data_dir.glob("run/*/*.pid"):
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(service.data_dir, ignore_errors=True)


def _table(r: dict[str, Any]) -> str:
    data = r["data_mib"]
    rows = [("viridian full backup (live)", r["full_s"], data),
            ("viridian incremental (10 % changed)", r["incremental_s"], data),
            ("qemu-img convert -O qcow2", r["convert_s"], data),
            ("cp --sparse=always (floor)", r["cp_s"], data)]
    lines = [f"{'step':<38}{'seconds':>9}{'MiB/s':>9}{'vs convert':>12}{'vs cp':>8}"]
    for name, seconds, mib in rows:
        lines.append(f"{name:<38}{seconds:>9.2f}{mib / seconds:>9.1f}"
                     f"{seconds / r['convert_s']:>11.2f}x{seconds / r['cp_s']:>7.2f}x")
    lines.append(f"{'restore job (disks + registration)':<38}{r['restore_job_s']:>9.2f}")
    lines.append(f"{'restore to a booted VM (job + boot)':<38}{r['restore_boot_s']:>9.2f}")
    lines.append(f"data {data} MiB (boot VHD + {r['size_mb']} MiB VHDX half full); the "
                 f"incremental point wrote {r['incremental_written_mib']} MiB, the full one "
                 f"{r['full_written_mib']} MiB")
    for kind in ("full", "incremental"):
        phases = ", ".join(f"{k.removesuffix('_s')} {v:.2f}"
                           for k, v in r[f"{kind}_phases_s"].items())
        lines.append(f"{kind} point phases (s): {phases}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a {QUICK_SIZE_MB} MiB data disk (smoke test)")
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(QUICK_SIZE_MB if args.quick else args.size_mb)
    print(json.dumps(result, indent=2) if args.json else _table(result))


if __name__ == "__main__":
    try:
        main()
    except BenchError as err:
        print(f"bench_backup: {err}", file=sys.stderr)
        sys.exit(1)
