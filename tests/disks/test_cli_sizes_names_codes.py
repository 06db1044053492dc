"""`viridian disk`: one size rule, honest sizes, .vhd names, table exit codes (issues 12, 13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from viridian import errors
from viridian.cli.disk import disk_group
from viridian.cli.sizes import SizeError, format_size, parse_size, parse_size_mb
from viridian.disks import (
    BadFooter,
    CorruptDisk,
    DiskError,
    DiskExists,
    DiskInUse,
    DiskNotFound,
    InvalidDiskArgument,
    NoSpace,
    ParentLinkError,
    UnsupportedDisk,
    inspect,
)

from .helpers import MiB
from .test_cli import run

GiB = 1024 * MiB


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1", MiB), ("2048", 2 * GiB), ("1B", 1), ("100KB", 100 << 10), ("100kib", 100 << 10),
        ("512MB", 512 * MiB), ("512 MiB", 512 * MiB), ("512m", 512 * MiB), ("1.5GB", 3 * GiB // 2),
        ("2gib", 2 * GiB), ("1TB", 1 << 40), ("1TiB", 1 << 40), ("0.5KB", 512),
    ],
)  # fmt: skip
def test_every_unit_of_the_rule_and_a_bare_number_in_mb(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["10Q", "", "MB", "-1MB", "0.3B", "1 PB", "1,5GB"])
def test_sizes_outside_the_rule_are_refused_with_the_rule(text: str) -> None:
    with pytest.raises(SizeError, match=r"bare number means MB"):
        parse_size(text)


def test_mb_sizes_and_display() -> None:
    assert parse_size_mb("2GB") == 2048 and parse_size_mb(256) == 256
    with pytest.raises(SizeError, match="not a whole number of MB"):
        parse_size_mb("1000KB")
    assert [format_size(n) for n in (1, 512, MiB, 3 * GiB // 2 + 1)] == [
        "1 byte", "512 bytes", "1 MB", "1.5 GB (1610612737 bytes)",
    ]  # fmt: skip


def test_bare_size_is_mb_and_the_message_states_the_real_size(tmp_path: Path) -> None:
    out, _ = run("new", tmp_path / "a.vhd", "--size", "1")
    assert out.strip() == f"created dynamic disk {tmp_path / 'a.vhd'} (1 MB)"
    assert inspect(tmp_path / "a.vhd").virtual_size == MiB
    out, _ = run("new", tmp_path / "b.vhd", "--size", "1B")
    assert "(512 bytes); 1 byte requested, rounded up to whole 512-byte sectors" in out
    assert inspect(tmp_path / "b.vhd").virtual_size == 512
    out, _ = run("expand", tmp_path / "b.vhd", "--size", "1000B")
    assert out.strip() == f"expanded {tmp_path / 'b.vhd'} to 1 KB"


@pytest.mark.parametrize(
    ("command", "default"),
    [(["new"], None), (["new"], "default: 2MB"), (["expand"], None)],
)
def test_every_size_option_help_states_the_rule_and_default(
    command: list[str], default: str | None
) -> None:
    out, _ = run(*command, "--help")
    assert out.count("bare number = MB") == (2 if command == ["new"] else 1)
    if default:
        assert default in out


@pytest.mark.parametrize(
    "args",
    [
        ["new", "{d}/x.qcow2", "--size", "1"],  # *.vhdx is a VHDX now (issue 14)
        ["new", "{d}/x.img", "--size", "1", "--type", "fixed"],
        ["new", "{d}/x.vhd", "--floppy"],
        ["convert", "{d}/a.vhd", "{d}/x.vmdk"],
        ["convert", "{d}/a.vhd", "{d}/x.vhd", "--type", "raw"],
        ["merge", "{d}/a.vhd", "--output", "{d}/x.qcow2"],
    ],
)
def test_misnamed_destinations_are_refused_naming_the_extensions(
    tmp_path: Path, args: list[str]
) -> None:
    run("new", tmp_path / "a.vhd", "--size", "1")
    _, err = run(*[a.format(d=tmp_path) for a in args], code=2)
    assert "*.vhd" in err and "nothing was created" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.vhd"]


TABLE = [
    (DiskError, errors.HostError),
    (InvalidDiskArgument, errors.BadRequest),
    (DiskNotFound, errors.NotFound),
    (DiskExists, errors.Conflict),
    (DiskInUse, errors.Conflict),
    (NoSpace, errors.AdmissionRefused),
    (UnsupportedDisk, errors.BadRequest),
    (ParentLinkError, errors.BadRequest),
    (CorruptDisk, errors.BadRequest),
    (BadFooter, errors.BadRequest),
]


@pytest.mark.parametrize(("disk_error", "row"), TABLE)
def test_disk_errors_carry_the_status_exit_code_and_code_of_their_table_row(
    disk_error: type[DiskError], row: type[errors.ViridianError]
) -> None:
    assert (disk_error.http_status, disk_error.exit_code, disk_error.code) == (
        row.http_status, row.exit_code, row.code,
    )  # fmt: skip
    assert disk_error.exit_code != 1  # exit 1 is reserved for unexpected failures


def test_cli_exits_with_the_errors_own_code(tmp_path: Path) -> None:
    _, err = run("inspect", tmp_path / "none.vhd", code=3)
    assert "none.vhd: no such file" in err
    run("new", tmp_path / "a.vhd", "--size", "1")
    _, err = run("new", tmp_path / "a.vhd", "--size", "1", code=4)
    assert "already exists" in err
    _, err = run("new", tmp_path / "no" / "b.vhd", "--size", "1", code=3)
    assert "folder" in err and "does not exist" in err
    (tmp_path / "bad.vhd").write_bytes(b"conectix" + bytes(1016))
    _, err = run("inspect", tmp_path / "bad.vhd", code=2)
    assert "bad.vhd" in err
    held = subprocess.Popen(
        ["qemu-io", "-f", "vpc", str(tmp_path / "a.vhd")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert held.stdout is not None
        held.stdin.write(b"help\n")  # type: ignore[union-attr]
        held.stdin.flush()  # type: ignore[union-attr]
        held.stdout.readline()  # qemu-io answered: the image is open and locked
        res = CliRunner().invoke(disk_group, ["compact", str(tmp_path / "a.vhd")])
        assert res.exit_code == 4 and "in use" in res.stderr, res.stderr
    finally:
        held.kill()
        held.wait()


def test_the_disks_package_imports_nothing_else_of_viridian() -> None:
    code = (
        "import sys, viridian.disks; "
        "print(sorted(m for m in sys.modules if m.startswith('viridian') "
        "and m != 'viridian' and not m.startswith('viridian.disks')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
