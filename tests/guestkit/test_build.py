"""build(): what it produces, its cache, concurrent builds, errors; and the CLI command."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from viridian.cli.guestkit import guestkit_group
from viridian.errors import HostError
from viridian.guestkit import GuestImages, build
from viridian.guestkit.disk import DISK_SIZE, MBR_BIN
from viridian.guestkit.kernel import GUEST_MODULES


def _cache_root(images: GuestImages) -> Path:
    return images.directory.parent.parent


def test_cache_hit_returns_the_same_build_untouched(images: GuestImages) -> None:
    manifest = images.directory / "manifest.json"
    before = manifest.stat().st_mtime_ns
    assert build(_cache_root(images)) == images
    assert manifest.stat().st_mtime_ns == before
    assert json.loads(manifest.read_text())["version"] == images.version


def test_iso_is_el_torito_isolinux_with_kernel_and_initrd(images: GuestImages) -> None:
    report = subprocess.run(
        [
            "xorriso",
            "-indev",
            str(images.iso),
            "-report_el_torito",
            "plain",
            "-find",
            "/",
            "-type",
            "f",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "El Torito boot img :   1  BIOS  y   none" in report
    for name in (
        "/isolinux/isolinux.bin",
        "/isolinux/isolinux.cfg",
        "/boot/vmlinuz",
        "/boot/initrd.img",
    ):
        assert f"'{name}'" in report


def test_raw_disk_has_syslinux_mbr_active_fat_partition_and_boot_files(
    images: GuestImages,
) -> None:
    data = images.raw.read_bytes()[:512]
    assert len(images.raw.read_bytes()) == DISK_SIZE
    assert data[:440] == MBR_BIN.read_bytes()[:440]
    assert data[510:512] == b"\x55\xaa"
    entry = data[446:462]
    assert (entry[0], entry[4], int.from_bytes(entry[8:12], "little")) == (0x80, 0x0E, 2048)
    listing = subprocess.run(
        ["mdir", "-a", "-b", "-i", f"{images.raw}@@1048576", "::/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    for name in ("vmlinuz", "initrd.img", "syslinux.cfg", "ldlinux.sys", "ldlinux.c32"):
        assert f"::/{name}" in listing


def test_vhd_is_a_dynamic_vhd_with_the_raw_disks_content(images: GuestImages) -> None:
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", "-f", "vpc", str(images.vhd)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert info["virtual-size"] == DISK_SIZE
    assert images.vhd.stat().st_size < DISK_SIZE / 2  # dynamic: only used blocks stored
    with open(images.vhd, "rb") as vhd:
        vhd.seek(-512, os.SEEK_END)
        footer = vhd.read(512)
    assert footer[:8] == b"conectix"
    assert int.from_bytes(footer[60:64], "big") == 3  # disk type: dynamic (VHD spec, footer)
    subprocess.run(
        ["qemu-img", "compare", "-f", "raw", "-F", "vpc", str(images.raw), str(images.vhd)],
        capture_output=True,
        check=True,
    )


def test_initramfs_holds_init_agent_loader_and_every_driver(images: GuestImages) -> None:
    archive = gzip.decompress(images.initrd.read_bytes())
    names = set(
        subprocess.run(["cpio", "-it", "--quiet"], input=archive, capture_output=True, check=True)
        .stdout.decode()
        .split()
    )
    for needed in (
        "init",
        "sbin/shutdown",
        "bin/busybox",
        "bin/sh",
        "sbin/udhcpc",
        "sbin/ip",
        "usr/sbin/qemu-ga",
        "lib64/ld-linux-x86-64.so.2",
        "lib/x86_64-linux-gnu/libglib-2.0.so.0",
        "etc/acpi/PWRF/00000080",
        "etc/viridian/modules",
        f"lib/modules/{images.kernel_release}/modules.dep",
    ):
        assert needed in names, needed
    modules = {
        Path(n).name.removesuffix(".ko").replace("-", "_") for n in names if n.endswith(".ko")
    }
    assert set(GUEST_MODULES) <= modules
    assert images.initrd.stat().st_size < 16 * 1024 * 1024


def test_concurrent_builds_agree_on_one_result_and_a_damaged_build_is_redone(
    images: GuestImages, tmp_path: Path
) -> None:
    out = tmp_path / "kit"
    debs = out / "cache" / "debs"
    debs.mkdir(parents=True)
    for deb in (_cache_root(images) / "cache" / "debs").glob("*.deb"):
        os.link(deb, debs / deb.name)  # spare the download; the build itself is real
    code = (
        "import sys; from pathlib import Path; from viridian.guestkit import build; "
        "print(build(Path(sys.argv[1])).version)"
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    versions = [run.communicate(timeout=600)[0].strip() for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert versions == [images.version, images.version]
    assert [p.name for p in (out / "builds").iterdir()] == [images.version]
    (out / "builds" / images.version / "guest.raw").unlink()  # a damaged build is rebuilt
    built = build(out)
    assert built.version == images.version
    assert built.raw.stat().st_size == images.raw.stat().st_size
    assert [p.name for p in (out / "builds").iterdir()] == [images.version]


def test_unusable_output_folder_is_a_host_error_naming_it() -> None:
    with pytest.raises(HostError, match="cannot build in /proc/no-such-dir"):
        build(Path("/proc/no-such-dir"))


def test_cli_build_lists_the_cached_files(images: GuestImages) -> None:
    result = CliRunner().invoke(guestkit_group, ["build", "--output", str(_cache_root(images))])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert lines["version"] == images.version
    assert lines["iso"] == str(images.iso)
    assert lines["vhd"] == str(images.vhd)
    assert lines["kernel"] == str(images.kernel)
    assert lines["cmdline"] == images.cmdline


def test_cli_build_refuses_a_file_as_output(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    result = CliRunner().invoke(guestkit_group, ["build", "--output", str(tmp_path / "f")])
    assert result.exit_code == 2
    assert "is a file" in result.output
