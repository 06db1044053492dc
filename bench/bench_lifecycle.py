"""Lifecycle latencies of one guest under bare QEMU (the floor), viridian and libvirt.

    .venv/bin/python bench/bench_lifecycle.py [--repeat N] [--quick] [--json]
                                              [--no-libvirt] [--no-libvirt-setup] [--virsh]

The guest: the guest kit's ISO in the IDE DVD drive, 256 MiB, 1 vCPU, TCG — the same in
every stack. One *cycle* per stack: define, start (until running), [boot to READY, not
timed], pause, resume, save, restore (until running), turn off (until QEMU is gone),
then the VM is removed (not timed). Cycles alternate between stacks, ``--repeat`` times
(default 5); each stack first runs one untimed warm-up (define, start, turn off) so
first-call costs (libvirt's capability probe, imports) are not counted. The table shows
medians, viridian's overhead over bare QEMU and its ratio to libvirt, and flags the
targets: overhead <= 50 ms per operation, every operation at most libvirt's time.

libvirt is set up by ``scripts/libvirt-setup.sh`` (installs it when missing, starts the
daemons); when it cannot run, the bench says why and measures the other two. It is
driven through libvirt-python (one connection), or with ``--virsh`` (or without the
bindings) through the ``virsh`` CLI, whose own start-up time is then printed apart.
``--quick``: one repetition, bare QEMU and viridian only (the smoke test runs this).
``--json``: print one JSON document instead of the table. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the lifecycle_* modules

from lifecycle_common import OPERATIONS, BenchError, Guest, Stack
from lifecycle_qemu import BareQemu
from lifecycle_report import BARE, LIBVIRT, document, make_rows, median_ms, table, targets_met
from lifecycle_viridian import Viridian, ViridianService

Samples = dict[str, dict[str, list[float]]]
FSYNC = "fsync_after_save"  # bare QEMU only, untimed: what durability of a save costs


@dataclass(frozen=True)
class Options:
    repeat: int
    libvirt: bool
    libvirt_setup: bool
    json: bool
    quick: bool
    libvirt_cli: bool


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        metavar="N",
        help="cycles per stack; medians are reported (default 5)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="one cycle, bare QEMU and viridian only (smoke test)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--no-libvirt", action="store_true", help="leave libvirt out")
    parser.add_argument(
        "--no-libvirt-setup",
        action="store_true",
        help="do not run scripts/libvirt-setup.sh; use libvirtd as it is",
    )
    parser.add_argument(
        "--virsh",
        action="store_true",
        help="time the virsh CLI instead of libvirt-python (virsh's start-up shown apart)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, not {args.repeat}")
    return Options(
        repeat=1 if args.quick else args.repeat,
        libvirt=not (args.quick or args.no_libvirt),
        libvirt_setup=not args.no_libvirt_setup,
        json=args.json,
        quick=args.quick,
        libvirt_cli=args.virsh,
    )


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- one cycle -------------------------------------------------------------------------


async def timed(
    samples: dict[str, list[float]], operation: str, action: Callable[[], Awaitable[None]]
) -> float:
    begin = time.perf_counter()
    await action()
    elapsed = time.perf_counter() - begin
    samples.setdefault(operation, []).append(elapsed)
    return elapsed


async def cycle(stack: Stack, index: int, samples: dict[str, list[float]]) -> str:
    """One timed cycle of every operation; returns a one-line summary in ms."""
    steps: dict[str, Callable[[], Awaitable[None]]] = {
        "define": lambda: stack.define(index),
        "start": stack.start,
        "pause": stack.pause,
        "resume": stack.resume,
        "save": stack.save,
        "restore": stack.restore,
        "turn_off": stack.turn_off,
    }
    assert list(steps) == list(OPERATIONS)
    shown = []
    for operation, action in steps.items():
        if operation == "pause":
            await stack.wait_ready()  # same guest state in every stack before pause/save
        shown.append(f"{operation} {await timed(samples, operation, action) * 1000:.1f}")
        if operation == "save" and (extra := await stack.after_save()) is not None:
            samples.setdefault(FSYNC, []).append(extra)
    await stack.forget()
    return ", ".join(shown)


async def warm_up(stack: Stack, index: int) -> None:
    await stack.define(index)
    await stack.start()
    await stack.turn_off()
    await stack.forget()


# --- stacks ----------------------------------------------------------------------------


def libvirt_stack(
    guest: Guest, workdir: Path, options: Options, facts: dict[str, Any]
) -> Stack | None:
    """The libvirt stack, or None (with facts["libvirt"]["reason"] saying why)."""
    info: dict[str, Any] = {"available": False}
    facts["libvirt"] = info
    if not options.libvirt:
        info["reason"] = "left out (--quick or --no-libvirt)"
        return None
    import lifecycle_libvirt as lv

    say("libvirt: setting up (scripts/libvirt-setup.sh)")
    reason = lv.prepare_libvirt(install=options.libvirt_setup)
    if reason is not None:
        info["reason"] = reason
        say(f"libvirt: not available, carrying on without it: {reason}")
        return None
    try:
        driver = lv.open_driver(cli=options.libvirt_cli)
    except BenchError as err:
        info["reason"] = str(err)
        say(f"libvirt: not available, carrying on without it: {err}")
        return None
    info.update(available=True, driver=driver.label, version=_libvirt_version())
    if isinstance(driver, lv.VirshDriver):
        info["virsh_overhead_ms"] = round(lv.virsh_overhead_s() * 1000, 1)
    return lv.Libvirt(guest, workdir, driver)


def _libvirt_version() -> str:
    done = subprocess.run(["virsh", "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _qemu_version() -> str:
    done = subprocess.run(
        ["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=False
    )
    return done.stdout.splitlines()[0] if done.stdout else "unknown"


def guest_kit_iso() -> Path:
    from viridian.guestkit import build

    say("guest kit: building or finding the ISO")
    return build(progress=say).iso


# --- the run ---------------------------------------------------------------------------


async def measure(stacks: list[Stack], repeat: int, facts: dict[str, Any]) -> Samples:
    """Warm up, then ``repeat`` alternating cycles; a failing libvirt is dropped, not fatal."""
    samples: Samples = {stack.name: {} for stack in stacks}
    for rep in range(-1, repeat):
        for stack in list(stacks):
            try:
                if rep < 0:
                    await warm_up(stack, 1000)
                    continue
                summary = await cycle(stack, rep, samples[stack.name])
                say(f"[{rep + 1}/{repeat}] {stack.name}: {summary}")
            except Exception as err:
                if stack.name != LIBVIRT:
                    raise
                say(f"libvirt: failed, carrying on without it: {err}")
                facts["libvirt"].update(available=False, reason=f"failed during the run: {err}")
                await stack.close()
                stacks.remove(stack)
                del samples[stack.name]
    return samples


async def run(options: Options) -> dict[str, Any]:
    """Measure every stack; the rows, the samples and the facts about the run."""
    source = guest_kit_iso()
    workdir = Path(tempfile.mkdtemp(prefix="lcb-", dir="/tmp"))  # short: socket paths
    try:
        # A private copy: a newer guest kit build may prune the cached one during the run.
        guest = Guest(iso=Path(shutil.copy2(source, workdir / "guest.iso")))
        facts = run_facts(guest, source, options)
        samples = await measure_stacks(guest, workdir, options, facts)
        facts["load_average_after"] = _load()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"rows": make_rows(OPERATIONS, samples), "samples": samples, "facts": facts}


def run_facts(guest: Guest, source: Path, options: Options) -> dict[str, Any]:
    return {
        "guest": {
            "iso": str(source),
            "memory_mb": guest.memory_mb,
            "processors": guest.processors,
            "accelerator": "tcg",
        },
        "repeat": options.repeat,
        "quick": options.quick,
        "qemu": _qemu_version(),
        "host_cpus": os.cpu_count(),
        "load_average_before": _load(),
    }


def _load() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the host skews every figure."""
    return [round(value, 2) for value in os.getloadavg()]


async def measure_stacks(
    guest: Guest, workdir: Path, options: Options, facts: dict[str, Any]
) -> Samples:
    """Start the service, set up the stacks, measure; leave nothing running."""
    service = ViridianService()
    stacks: list[Stack] = []
    try:
        say(f"viridian: starting the service on {service.data_dir}")
        service.start()
        stacks = [BareQemu(guest, workdir / "bare"), Viridian(guest, service)]
        peer = libvirt_stack(guest, workdir / "libvirt", options, facts)
        if peer is not None:
            stacks.append(peer)
        return await measure(stacks, options.repeat, facts)
    finally:
        for stack in stacks:
            await stack.close()
        service.stop()
        shutil.rmtree(service.data_dir, ignore_errors=True)


def print_report(result: dict[str, Any], options: Options) -> None:
    rows, samples, facts = result["rows"], result["samples"], result["facts"]
    if options.json:
        print(json.dumps(document(rows, samples, facts), indent=2))
        return
    libvirt = facts["libvirt"]
    peer = (
        f"libvirt {libvirt['version']} via {libvirt['driver']}"
        if libvirt["available"]
        else f"libvirt: not measured ({libvirt['reason']})"
    )
    print(
        f"guest: {facts['guest']['iso']} ({facts['guest']['memory_mb']} MiB, "
        f"{facts['guest']['processors']} vCPU, TCG); {facts['qemu']}; {peer}"
    )
    print(
        f"medians of {options.repeat} cycle(s) per stack, after one warm-up each; "
        f"{facts['host_cpus']} CPUs, load average {facts['load_average_before'][0]} before, "
        f"{facts['load_average_after'][0]} after"
    )
    if "virsh_overhead_ms" in libvirt:
        print(
            f"virsh start-up overhead (included in every libvirt figure): "
            f"{libvirt['virsh_overhead_ms']:.1f} ms"
        )
    print(table(rows))
    fsync = median_ms(samples.get(BARE, {}).get(FSYNC))
    if fsync is not None:
        print(
            f"bare QEMU's save does not fsync the state file; an fsync right after it took "
            f"{fsync:.1f} ms (median) - viridian's save includes one (a durable Saved state)"
        )
    met = targets_met(rows)
    print(
        f"targets: viridian overhead <= 50 ms per operation: {_met(met['overhead_le_50ms'])}; "
        f"every operation at most libvirt's time: {_met(met['at_most_libvirt'])}"
    )


def _met(value: bool | None) -> str:
    return "not judged" if value is None else ("met" if value else "MISSED")


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    result = asyncio.run(run(options))
    print_report(result, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
