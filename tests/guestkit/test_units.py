"""The guest kit's pure parts: cache key, config disks, boot configs, cpio, parsers."""

from __future__ import annotations

import base64
import dataclasses
import stat
import subprocess
from pathlib import Path

import pytest

from viridian.errors import BadRequest
from viridian.guestkit import make_config_disk, viridian_cmd_param
from viridian.guestkit.bootconfig import (
    kernel_command_line,
    render_isolinux_cfg,
    render_syslinux_cfg,
)
from viridian.guestkit.cachekey import BuildInputs, cache_key, digest_files
from viridian.guestkit.configdisk import CONFIG_AREA, MAX_SCRIPT_BYTES, encode_config
from viridian.guestkit.disk import render_partition_table
from viridian.guestkit.initramfs import CpioEntry, pack_newc, parse_ldd
from viridian.guestkit.kernel import parse_apt_show

INPUTS = BuildInputs(
    kernel_package="linux-image-6.1.0-56-amd64",
    kernel_version="6.1.192-2",
    host_packages={"busybox-static": "1:1.35.0-4", "qemu-guest-agent": "1:7.2+dfsg-7"},
    sources="abc",
    converter="qemu-img",
)


def test_cache_key_names_the_kernel_release_and_is_stable() -> None:
    key = cache_key(INPUTS)
    assert key.startswith("6.1.0-56-amd64-")
    assert len(key.rsplit("-", 1)[1]) == 12
    assert cache_key(dataclasses.replace(INPUTS)) == key


@pytest.mark.parametrize(
    "change",
    [
        {"kernel_version": "6.1.192-3"},
        {"kernel_package": "linux-image-6.1.0-57-amd64"},
        {"host_packages": {"busybox-static": "1:1.36", "qemu-guest-agent": "1:7.2+dfsg-7"}},
        {"host_packages": {"busybox-static": "1:1.35.0-4", "qemu-guest-agent": "1:8.0"}},
        {"sources": "abd"},
        {"converter": "viridian.disks.convert:1234"},
    ],
)
def test_cache_key_changes_with_every_input(change: dict[str, object]) -> None:
    assert cache_key(dataclasses.replace(INPUTS, **change)) != cache_key(INPUTS)  # type: ignore[arg-type]


def test_cache_key_ignores_package_order() -> None:
    reordered = dict(reversed(list(INPUTS.host_packages.items())))
    assert cache_key(dataclasses.replace(INPUTS, host_packages=reordered)) == cache_key(INPUTS)


def test_digest_files_sees_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "init").write_text("echo a\n")
    (tmp_path / "lib.sh").write_text("b\n")
    first = digest_files([tmp_path / "init", tmp_path / "lib.sh"], tmp_path)
    assert digest_files([tmp_path / "lib.sh", tmp_path / "init"], tmp_path) == first
    (tmp_path / "init").write_text("echo A\n")
    assert digest_files([tmp_path / "init", tmp_path / "lib.sh"], tmp_path) != first


def test_config_disk_holds_magic_script_and_nul_then_zeros(tmp_path: Path) -> None:
    script = "echo héllo\nexit 3\n"
    path = make_config_disk(tmp_path / "cfg.img", script)
    data = path.read_bytes()
    assert len(data) == 64 * 1024
    head = b"VIRIDIAN-CFG\n" + script.encode() + b"\0"
    assert data.startswith(head)
    assert data[len(head) :] == bytes(len(data) - len(head))


def test_config_disk_size_can_be_a_floppy_and_replaces_existing(tmp_path: Path) -> None:
    path = tmp_path / "floppy.img"
    path.write_bytes(b"old" * 1000)
    make_config_disk(path, "true", size=1474560)
    assert path.stat().st_size == 1474560
    assert path.read_bytes()[:18] == b"VIRIDIAN-CFG\ntrue\0"


@pytest.mark.parametrize("size", [512, 65536 + 100, 0])
def test_config_disk_rejects_bad_sizes(tmp_path: Path, size: int) -> None:
    with pytest.raises(BadRequest, match=f"size {size} is invalid; allowed: a multiple of 512"):
        make_config_disk(tmp_path / "cfg.img", "true", size=size)
    assert not (tmp_path / "cfg.img").exists()


def test_config_script_limits() -> None:
    assert len(encode_config("x" * MAX_SCRIPT_BYTES)) == CONFIG_AREA
    with pytest.raises(BadRequest, match=f"allowed: at most {MAX_SCRIPT_BYTES} bytes"):
        encode_config("x" * (MAX_SCRIPT_BYTES + 1))
    with pytest.raises(BadRequest, match="must not contain NUL"):
        encode_config("echo a\0b")


def test_viridian_cmd_param_is_base64_without_spaces() -> None:
    param = viridian_cmd_param("echo 'a b'; ip -o link")
    name, _, value = param.partition("=")
    assert name == "viridian.cmd"
    assert " " not in value
    assert base64.b64decode(value).decode() == "echo 'a b'; ip -o link"


def test_kernel_command_line_keeps_tty0_first_and_serial_last_before_extras() -> None:
    assert kernel_command_line() == "console=tty0 console=ttyS0,115200 quiet no_timer_check"
    assert kernel_command_line(["viridian.cmd=ZQ=="]).endswith(
        " quiet no_timer_check viridian.cmd=ZQ==")


def test_isolinux_cfg_boots_straight_into_the_kit() -> None:
    assert render_isolinux_cfg() == (
        "SERIAL 0 115200\n"
        "DEFAULT viridian\n"
        "PROMPT 0\n"
        "TIMEOUT 0\n"
        "LABEL viridian\n"
        "  KERNEL /boot/vmlinuz\n"
        "  INITRD /boot/initrd.img\n"
        "  APPEND console=tty0 console=ttyS0,115200 quiet no_timer_check\n"
    )


def test_syslinux_cfg_reads_files_from_the_partition_root() -> None:
    text = render_syslinux_cfg("console=ttyS0 extra=1")
    assert "  KERNEL /vmlinuz\n  INITRD /initrd.img\n  APPEND console=ttyS0 extra=1\n" in text


def test_partition_table_is_one_active_fat16_partition_after_1mib() -> None:
    assert render_partition_table(64 * 1024 * 1024) == (
        "label: dos\n"
        "label-id: 0x56495244\n"
        "unit: sectors\n"
        "start=2048, size=129024, type=e, bootable\n"
    )


def test_newc_archive_is_read_back_by_cpio(tmp_path: Path) -> None:
    archive = pack_newc(
        [
            CpioEntry("sbin/shutdown", stat.S_IFREG | 0o755, b"#!/bin/sh\necho x\n"),
            CpioEntry("bin", stat.S_IFDIR | 0o755),
            CpioEntry("sbin", stat.S_IFDIR | 0o755),
            CpioEntry("bin/sh", stat.S_IFLNK | 0o777, b"busybox"),
            CpioEntry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
        ]
    )
    assert len(archive) % 4 == 0
    names = subprocess.run(
        ["cpio", "-it", "--quiet"], input=archive, capture_output=True, check=True
    ).stdout.decode()
    assert names.split() == ["bin", "bin/sh", "dev/console", "sbin", "sbin/shutdown"]
    listing = subprocess.run(
        ["cpio", "-itv", "--quiet"], input=archive, capture_output=True, check=True
    ).stdout.decode()
    assert "bin/sh -> busybox" in listing
    assert any(line.startswith("crw-------") and "5,   1" in line for line in listing.splitlines())
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "sbin/shutdown"], input=archive, cwd=out, check=True)
    assert (out / "sbin/shutdown").read_bytes() == b"#!/bin/sh\necho x\n"


def test_parse_ldd_takes_resolved_libraries_and_the_loader() -> None:
    text = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibglib-2.0.so.0 => /lib/x86_64-linux-gnu/libglib-2.0.so.0 (0x00007f19)\n"
        "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f19edd33000)\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f19ee284000)\n"
    )
    assert parse_ldd(text) == [
        Path("/lib/x86_64-linux-gnu/libglib-2.0.so.0"),
        Path("/lib/x86_64-linux-gnu/libc.so.6"),
        Path("/lib64/ld-linux-x86-64.so.2"),
    ]


def test_parse_apt_show_finds_the_versioned_image_package() -> None:
    text = (
        "Package: linux-image-amd64\n"
        "Source: linux-signed-amd64 (6.1.192+2)\n"
        "Version: 6.1.192-2\n"
        "Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\n"
    )
    package = parse_apt_show(text)
    assert package is not None
    assert (package.name, package.version, package.release) == (
        "linux-image-6.1.0-56-amd64",
        "6.1.192-2",
        "6.1.0-56-amd64",
    )
    assert package.deb_name == "linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb"
    assert parse_apt_show("N: Unable to locate package linux-image-amd64\n") is None
