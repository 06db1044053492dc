"""The accelerator probe with real QEMU: the probe guest, the fallback, the overrides."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from viridian.errors import InvalidSetting
from viridian.qemu.errors import QemuError
from viridian.qemu.probe import (
    DEFAULT_QEMU,
    PROBE_FIRMWARE,
    PROBE_FIRMWARE_SOURCE,
    clear_probe_cache,
    probe_accelerator,
    probe_host,
    run_probe_guest,
)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_probe_cache()


def _qemu_version() -> tuple[int, int, int]:
    out = subprocess.run([DEFAULT_QEMU, "--version"], capture_output=True, text=True, check=True)
    major, minor, micro = out.stdout.split()[3].split(".")[:3]
    return int(major), int(minor), int(micro)


def test_probe_guest_completes_under_tcg_and_reports_the_version() -> None:
    run = asyncio.run(run_probe_guest("tcg", 10.0, DEFAULT_QEMU))
    assert run.completed, run.verdict()
    assert run.stages == "RPL!"
    assert run.version == _qemu_version()
    assert run.machine is not None and run.machine.startswith("pc-i440fx-")
    assert run.verdict().startswith("tcg guest completed in ")


def test_auto_falls_back_or_uses_kvm_according_to_a_real_kvm_run() -> None:
    timeout = 3.0
    started = time.monotonic()
    report = asyncio.run(probe_host("auto", timeout))
    elapsed = time.monotonic() - started
    print(f"\nprobe: {elapsed:.2f} s; {report.reason}")
    caps = report.capabilities
    assert elapsed < timeout + 2.0 + 5.0  # KVM limit + slack + the TCG run on a loaded host
    assert caps.accelerator in ("kvm", "tcg")
    assert caps.qemu_version == _qemu_version()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert caps.accelerator == "tcg" and "/dev/kvm is missing" in report.reason
        return
    kvm = asyncio.run(run_probe_guest("kvm", timeout, DEFAULT_QEMU))
    assert caps.accelerator == ("kvm" if kvm.completed else "tcg"), kvm.verdict()
    if caps.accelerator == "tcg":
        assert report.reason.startswith("KVM does not work: kvm guest stalled")


def test_results_are_cached_per_override() -> None:
    async def scenario() -> None:
        first = await probe_host("tcg")
        assert await probe_host("tcg") is first
        assert await probe_accelerator("tcg") is first.capabilities

    asyncio.run(scenario())


def test_overrides_force_the_accelerator_without_probing_kvm() -> None:
    tcg = asyncio.run(probe_host("tcg"))
    assert tcg.capabilities.accelerator == "tcg"
    assert tcg.reason.startswith("accelerator forced to tcg")
    kvm = asyncio.run(probe_host("kvm"))
    assert kvm.capabilities.accelerator == "kvm"
    assert kvm.reason == "accelerator forced to kvm (not probed)"
    assert kvm.capabilities.qemu_version == _qemu_version()


def test_bad_override_names_the_allowed_values() -> None:
    with pytest.raises(
        InvalidSetting, match=r"invalid value 'xen' for accelerator.*auto, kvm, tcg"
    ):
        asyncio.run(probe_accelerator("xen"))  # type: ignore[arg-type]


def test_missing_qemu_binary_is_reported_not_hidden() -> None:
    run = asyncio.run(run_probe_guest("tcg", 2.0, "/nonexistent/qemu-system-x86_64"))
    assert not run.completed and "not found" in run.error
    with pytest.raises(QemuError, match="QEMU cannot run guests"):
        asyncio.run(probe_host("tcg", qemu_binary="/nonexistent/qemu-system-x86_64"))


@pytest.mark.skipif(shutil.which("as") is None, reason="GNU as (binutils) is not installed")
def test_embedded_firmware_is_the_assembled_source(tmp_path: Path) -> None:
    source = tmp_path / "probe.S"
    source.write_text(PROBE_FIRMWARE_SOURCE)
    subprocess.run(["as", "--64", "-o", tmp_path / "probe.o", source], check=True)
    subprocess.run(
        ["ld", "-e", "0xF0000", "-m", "elf_x86_64", "-Ttext=0xF0000", "--oformat=binary",
         "-o", tmp_path / "probe.bin", tmp_path / "probe.o"],
        check=True,
    )  # fmt: skip
    code = (tmp_path / "probe.bin").read_bytes()
    assert PROBE_FIRMWARE[: len(code)] == code
    assert PROBE_FIRMWARE[len(code) : 0xFFF0] == bytes(0xFFF0 - len(code))
    assert PROBE_FIRMWARE[0xFFF0:0xFFF5] == bytes.fromhex("ea000000f0")  # ljmp F000:0000
    assert len(PROBE_FIRMWARE) == 0x10000
