"""Which accelerator really works on this host: KVM is tried for real, TCG is the fallback.

``/dev/kvm`` existing proves little: on some hosts (nested virtualisation that does not
work) a KVM guest starts and then hangs. So the probe boots a tiny guest under KVM and
requires it to finish within a time limit. The guest is :data:`PROBE_FIRMWARE`, a
64 KiB firmware image of our own (given to QEMU with ``-bios``, no SeaBIOS involved)
that walks the path every modern guest takes — reset vector in real mode, protected
mode, paging and long mode, then a million-iteration loop — and reports each stage by
writing one letter to the ``isa-debugcon`` port 0x402: ``R``, ``P``, ``L``, then ``!``.
TCG runs it in a few milliseconds; a working KVM faster. Whatever does not print ``!``
within ``timeout`` is killed, and the letters seen say how far it got.

The same QEMU answers ``query-version`` and ``query-machines`` (the concrete machine
type behind the ``pc`` alias). Results are cached for the life of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, get_args

from viridian.errors import InvalidSetting

from .capabilities import Accelerator, HostCapabilities
from .errors import MonitorError, QemuError, QemuTimeout
from .monitor import Monitor
from .process import QemuProcess, StartPatience, connect_when_listening, log_tail

__all__ = [
    "PROBE_FIRMWARE",
    "PROBE_FIRMWARE_SOURCE",
    "AcceleratorOverride",
    "ProbeReport",
    "clear_probe_cache",
    "probe_accelerator",
    "probe_host",
    "run_probe_guest",
]

logger = logging.getLogger(__name__)

AcceleratorOverride = Literal["auto", "kvm", "tcg"]
DEFAULT_QEMU = "/usr/bin/qemu-system-x86_64"
_DEBUGCON_PORT = "0x402"
_ALL_STAGES = "RPL!"
_STAGE_NAMES = {
    "": "before its first instruction",
    "R": "in real mode (never reached protected mode)",
    "RP": "in protected mode (never reached long mode)",
    "RPL": "in long mode (never finished its loop)",
}

#: GNU as source of the probe guest (``as --64``; ``ld -Ttext=0xF0000 --oformat=binary``).
PROBE_FIRMWARE_SOURCE = r"""
    .code16
start:                          /* F000:0000, reached from the reset vector */
    cli
    mov $0x402, %dx
    mov $'R', %al
    out %al, %dx
    lgdtl %cs:(gdtr - 0xF0000)
    mov %cr0, %eax
    or $1, %al
    mov %eax, %cr0              /* protected mode */
    ljmpl $0x08, $pm32
    .code32
pm32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $'P', %al
    out %al, %dx
    movl $0x2003, 0x1000        /* PML4[0] -> PDPT at 0x2000 */
    movl $0x3003, 0x2000        /* PDPT[0] -> PD at 0x3000 */
    movl $0x0083, 0x3000        /* PD[0]: 2 MiB identity page */
    mov %cr4, %eax
    or $0x20, %eax              /* PAE */
    mov %eax, %cr4
    mov $0x1000, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx       /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000000, %eax        /* paging: long mode active */
    mov %eax, %cr0
    ljmp $0x18, $lm64
    .code64
lm64:
    mov $0x402, %dx             /* rdmsr clobbered %edx */
    mov $'L', %al
    out %al, %dx
    mov $1000000, %ecx
1:  dec %ecx
    jnz 1b
    mov $'!', %al
    out %al, %dx
2:  hlt
    jmp 2b
    .balign 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF    /* 0x08: 32-bit code */
    .quad 0x00CF92000000FFFF    /* 0x10: data */
    .quad 0x00AF9A000000FFFF    /* 0x18: 64-bit code */
gdtr:
    .word gdtr - gdt - 1
    .long gdt
"""

_PROBE_CODE = bytes.fromhex(
    "faba0204b052ee2e660f0116b0000f20c00c010f22c066ea1e000f00080066b810008ed88ec08e"
    "d0b050eec7050010000003200000c7050020000003300000c70500300000830000000f20e083c8"
    "200f22e0b8001000000f22d8b9800000c00f320d000100000f300f20c00d000000800f22c0ea7a"
    "000f00180066ba0204b04ceeb940420f00ffc975fcb021eef4ebfd0000000000000000ffff0000"
    "009acf00ffff00000092cf00ffff0000009aaf001f0090000f00"
)
_RESET_VECTOR = bytes.fromhex("ea000000f0")  # ljmp $0xF000, $0x0000 (at F000:FFF0)


def _firmware_image() -> bytes:
    image = bytearray(0x10000)
    image[: len(_PROBE_CODE)] = _PROBE_CODE
    image[0xFFF0 : 0xFFF0 + len(_RESET_VECTOR)] = _RESET_VECTOR
    return bytes(image)


#: The 64 KiB firmware image: code at offset 0 (0xF0000), reset jump at 0xFFF0.
PROBE_FIRMWARE = _firmware_image()


@dataclass(frozen=True)
class ProbeRun:
    """One run of the probe guest under one accelerator."""

    accelerator: Accelerator
    stages: str
    """Debugcon letters seen: ``RPL!`` when the guest completed."""
    seconds: float
    version: tuple[int, int, int] | None
    machine: str | None
    error: str = ""

    @property
    def completed(self) -> bool:
        return self.stages == _ALL_STAGES

    def verdict(self) -> str:
        if self.completed:
            return f"{self.accelerator} guest completed in {self.seconds * 1000:.0f} ms"
        if self.error:
            return f"{self.accelerator} guest failed: {self.error}"
        where = _STAGE_NAMES.get(self.stages, f"after {self.stages!r}")
        return f"{self.accelerator} guest stalled {where}; killed after {self.seconds:.1f} s"


@dataclass(frozen=True)
class ProbeReport:
    """The probed capabilities and, for the admin, why this accelerator was chosen."""

    capabilities: HostCapabilities
    reason: str


_cache: dict[tuple[str, str], ProbeReport] = {}
# One lock per event loop (an asyncio.Lock belongs to the loop that first waits on it).
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def clear_probe_cache() -> None:
    _cache.clear()


async def probe_accelerator(
    override: AcceleratorOverride = "auto", timeout: float = 3.0, qemu_binary: str = DEFAULT_QEMU
) -> HostCapabilities:
    """The host's capabilities with the accelerator to use (see :func:`probe_host`)."""
    return (await probe_host(override, timeout, qemu_binary)).capabilities


async def probe_host(
    override: AcceleratorOverride = "auto", timeout: float = 3.0, qemu_binary: str = DEFAULT_QEMU
) -> ProbeReport:
    """Probe once per process and ``(override, qemu_binary)``; later calls return the cache.

    ``auto`` runs the probe guest under KVM when ``/dev/kvm`` is usable and falls back to
    TCG; ``kvm`` trusts the admin and uses KVM unprobed; ``tcg`` never touches KVM.
    The QEMU version and machine type always come from a TCG run of the probe guest
    when KVM is not used, which also proves that QEMU can run guests at all.

    :raises InvalidSetting: ``override`` is not one of auto, kvm, tcg.
    :raises QemuError: not even TCG can run the probe guest.
    """
    allowed = get_args(AcceleratorOverride)
    if override not in allowed:
        raise InvalidSetting("accelerator", override, ", ".join(allowed))
    lock = _locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        key = (override, qemu_binary)
        if key not in _cache:
            _cache[key] = await _probe(override, timeout, qemu_binary)
            logger.info("accelerator: %s", _cache[key].reason)
        return _cache[key]


async def _probe(override: AcceleratorOverride, timeout: float, binary: str) -> ProbeReport:
    if override == "auto":
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            return await _tcg_report(binary, timeout, "/dev/kvm is missing or not usable")
        kvm = await run_probe_guest("kvm", timeout, binary)
        if kvm.completed and kvm.version:
            return ProbeReport(_capabilities(binary, kvm), f"KVM works: {kvm.verdict()}")
        return await _tcg_report(binary, timeout, f"KVM does not work: {kvm.verdict()}")
    report = await _tcg_report(binary, timeout, f"accelerator forced to {override}")
    if override == "kvm":
        caps = replace(report.capabilities, accelerator="kvm")
        return ProbeReport(caps, "accelerator forced to kvm (not probed)")
    return report


async def _tcg_report(binary: str, timeout: float, why: str) -> ProbeReport:
    tcg = await run_probe_guest("tcg", max(timeout, 5.0), binary)
    if not (tcg.completed and tcg.version):
        raise QemuError(f"QEMU cannot run guests: {tcg.verdict()}; before that: {why}")
    return ProbeReport(_capabilities(binary, tcg), f"{why}; using TCG ({tcg.verdict()})")


def _capabilities(binary: str, run: ProbeRun) -> HostCapabilities:
    assert run.version is not None
    defaults = HostCapabilities()
    return HostCapabilities(
        qemu_binary=binary,
        qemu_version=run.version,
        accelerator=run.accelerator,
        machine=run.machine or defaults.machine,
    )


_ORPHAN_GRACE_S = 10.0


async def run_probe_guest(accelerator: Accelerator, timeout: float, binary: str) -> ProbeRun:
    """Boot :data:`PROBE_FIRMWARE` under ``accelerator``; wait at most ``timeout`` s for
    it to complete, then kill it. Never raises for a guest that fails: see the result."""
    with tempfile.TemporaryDirectory(prefix="viridian-probe-") as tmp:
        folder = Path(tmp)
        (folder / "probe.bin").write_bytes(PROBE_FIRMWARE)
        os.mkfifo(folder / "debugcon")
        # A hung KVM guest must not outlive a service killed mid-probe: coreutils'
        # ``timeout`` (in the probe's own session) kills it at a deadline of its own.
        deadline = f"{timeout + _ORPHAN_GRACE_S:.0f}"
        if shutil.which(binary) is None:
            return ProbeRun(accelerator, "", 0.0, None, None, f"cannot start {binary}: not found")
        argv = ["timeout", "-s", "KILL", deadline, *_probe_argv(binary, accelerator, folder)]
        started = time.monotonic()
        # Open the FIFO's read end first (non-blocking) so QEMU's open for writing succeeds.
        fifo = os.open(folder / "debugcon", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            process = QemuProcess.spawn(argv, folder / "qemu.log")
        except QemuError as err:
            os.close(fifo)
            return ProbeRun(accelerator, "", 0.0, None, None, str(err))
        try:
            return await _watch_probe(process, fifo, folder, accelerator, timeout, started)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # timeout and QEMU together
            process.kill(signal.SIGKILL)
            with contextlib.suppress(QemuTimeout):
                await process.wait(5.0)
            process.close()
            os.close(fifo)


def _probe_argv(binary: str, accelerator: Accelerator, folder: Path) -> list[str]:
    return [
        binary,
        *("-accel", accelerator, "-machine", "pc", "-nodefaults", "-no-user-config"),
        *("-display", "none", "-m", "16", "-bios", str(folder / "probe.bin")),
        *("-qmp", f"unix:{folder / 'qmp.sock'},server=on,wait=off"),
        *("-chardev", f"file,id=debugcon,path={folder / 'debugcon'}"),
        *("-device", f"isa-debugcon,iobase={_DEBUGCON_PORT},chardev=debugcon"),
    ]


async def _watch_probe(
    process: QemuProcess,
    fifo: int,
    folder: Path,
    accelerator: Accelerator,
    timeout: float,
    started: float,
) -> ProbeRun:
    stages = bytearray()
    readable = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fifo, readable.set)
    version = machine = None
    error = ""
    try:
        async with asyncio.timeout(timeout):
            version, machine = await _query_qemu(process, folder, timeout)
            while stages.decode(errors="replace") != _ALL_STAGES and not process.exited():
                await readable.wait()
                readable.clear()
                with contextlib.suppress(BlockingIOError):
                    stages += os.read(fifo, 64)
    except TimeoutError:
        pass
    except QemuError as err:
        error = str(err)
    finally:
        loop.remove_reader(fifo)
    if process.exited() and not error:
        tail = log_tail(folder / "qemu.log")
        error = f"QEMU exited ({(await process.wait()).describe()}): {tail}"
    text = stages.decode(errors="replace")
    return ProbeRun(accelerator, text, time.monotonic() - started, version, machine, error)


async def _query_qemu(
    process: QemuProcess, folder: Path, timeout: float
) -> tuple[tuple[int, int, int], str | None]:
    sock = await connect_when_listening(folder / "qmp.sock", process,
                                        StartPatience.fixed(process, timeout),
                                        folder / "qemu.log")
    monitor = Monitor("probe", command_timeout=timeout)
    try:
        await monitor.connect(sock, timeout)
        version = await monitor.version()
        machine = (await monitor.machine_aliases()).get("pc")
    except MonitorError as err:
        raise QemuError(f"QMP query failed: {err}") from err
    finally:
        await monitor.close()
    return version, machine
