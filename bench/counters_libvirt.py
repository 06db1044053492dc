"""The counters benchmark's peer: ``virsh domstats`` on equivalent guests under libvirt.

:func:`measure_libvirt` defines and starts ``running`` transient-free domains named
``viridian-bstats-<pid>-<n>`` (64 MB, TCG, pc-i440fx-7.2, one raw disk on IDE 0:0, no
display), then measures over ``seconds``:

- libvirtd's CPU per second with nobody asking for statistics (its idle cost),
- the same while ``virsh domstats DOMAIN…`` (this run's domains) runs once a second, plus the CPU of
  the ``virsh`` processes themselves.

``domstats_cost_pct`` = virsh CPU + (libvirtd CPU with stats - idle libvirtd CPU), in %
of one core: what getting every statistic of every running guest once a second costs
the libvirt stack. The domains are destroyed and undefined at the end, and their folder
(disks, domain XML) removed. When libvirt
cannot run here, the result is ``{"skipped": reason}``.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from lifecycle_libvirt import URI, prepare_libvirt

TICK = os.sysconf("SC_CLK_TCK")
PREFIX = "viridian-bstats-"


def domain_xml(name: str, disk: Path) -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model></cpu>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{disk}'/>
      <target dev='hda' bus='ide'/>
    </disk>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def _virsh(*args: str, check: bool = True) -> str:
    done = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True,
                          check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"virsh {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _libvirtd_pid() -> int:
    found = subprocess.run(["pgrep", "-x", "-o", "libvirtd"], capture_output=True, text=True,
                           check=False).stdout.split()
    if not found:
        raise RuntimeError("libvirtd is not running")
    return int(found[0])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _libvirtd_pct(pid: int, seconds: float, names: list[str] | None
                  ) -> tuple[float, float, int]:
    """(libvirtd CPU %, virsh CPU %, domstats calls of the domains ``names``; None: no
    calls) over ``seconds``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0, t0, calls = _cpu_s(pid), time.monotonic(), 0
    next_at = t0
    while time.monotonic() - t0 < seconds:
        if names is not None:
            _virsh("domstats", *names)
            calls += 1
        next_at += 1.0
        time.sleep(max(0.0, next_at - time.monotonic()))
    elapsed = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    virsh = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return 100 * (_cpu_s(pid) - cpu0) / elapsed, 100 * virsh / elapsed, calls


def measure_libvirt(running: int, seconds: float, disk_bytes: int) -> dict[str, Any]:
    """Run the peer (see the module docstring); never raises for a libvirt that cannot run."""
    reason = prepare_libvirt()
    if reason is not None:
        return {"skipped": reason}
    folder = Path(tempfile.mkdtemp(prefix="vir-bcl-", dir="/tmp"))
    names = [f"{PREFIX}{os.getpid()}-{i}" for i in range(running)]
    try:
        for name in names:
            disk = folder / f"{name}.img"
            with open(disk, "wb") as image:
                image.truncate(disk_bytes)
            (folder / f"{name}.xml").write_text(domain_xml(name, disk))
            _virsh("define", str(folder / f"{name}.xml"))
            _virsh("start", name)
        time.sleep(3)
        pid = _libvirtd_pid()
        # only this run's domains: another bench may run libvirt guests at the same time
        stats = _virsh("domstats", *names)
        idle, _, _ = _libvirtd_pct(pid, seconds, None)
        busy, virsh, calls = _libvirtd_pct(pid, seconds, names)
        extra = max(0.0, busy - idle)
        return {"running": running, "calls": calls,
                "disks": stats.count("block.0.name="),
                "libvirtd_idle_cpu_pct": round(idle, 3),
                "libvirtd_extra_cpu_pct": round(extra, 3),
                "virsh_cpu_pct": round(virsh, 3),
                "domstats_cost_pct": round(extra + virsh, 3)}
    except (RuntimeError, OSError) as err:
        return {"skipped": f"libvirt peer failed: {err}"}
    finally:
        for name in names:
            _virsh("destroy", name, check=False)
            _virsh("undefine", name, check=False)
        shutil.rmtree(folder, ignore_errors=True)  # the disks and domain XML files
