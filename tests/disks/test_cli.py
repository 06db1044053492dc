"""``viridian disk …`` through click's CliRunner on ``disk_group`` (real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from viridian.cli.disk import disk_group
from viridian.disks import inspect, open_disk

from .helpers import MiB, make_pattern, qemu_same, write_raw


def run(*args: str | Path, code: int = 0) -> tuple[str, str]:
    res = CliRunner().invoke(disk_group, [str(a) for a in args])
    assert res.exit_code == code, (res.output, res.stderr, res.exception)
    return res.stdout, res.stderr


def test_new_inspect_json_carries_every_field(tmp_path: Path) -> None:
    run("new", tmp_path / "d.vhd", "--size", "1.5GiB", "--block-size", "512K")
    run("new", tmp_path / "f.vhd", "--size", "512M", "--type", "fixed")
    run("new", tmp_path / "c.vhd", "--parent", tmp_path / "d.vhd")
    out, _ = run("inspect", tmp_path / "c.vhd", "--json")
    info = json.loads(out)
    assert info["disk_type"] == "differencing" and info["virtual_size"] == 3 << 29
    assert info["chain"][0]["block_size"] == 512 * 1024
    keys = ["file_size", "blocks_allocated", "geometry", "creator_application", "unique_id"]
    keys += ["footer_checksum_valid", "header_checksum_valid", "saved_state", "chain"]
    assert all(key in info for key in keys)
    assert inspect(tmp_path / "f.vhd").disk_type == "fixed"
    human, _ = run("inspect", tmp_path / "c.vhd")
    assert "parent 1:" in human and "disk type: differencing" in human


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["new", "x.vhd", "--size", "10Q"], "512MB, 20GB"),
        (["new", "x.vhd", "--size", "1M", "--type", "sparse"], "'dynamic', 'fixed'"),
        (["new", "x.vhd"], "--size is required"),
        (["new", "x.vhd", "--size", "1M", "--block-size", "3M"], "power of two"),
        (["new", "x.vhd", "--size", "3000G"], "2040 GiB"),
        (["convert", "a", "b", "--type", "vhdx"], "'fixed', 'dynamic', 'raw'"),
        (["merge", "c.vhd"], "exactly one of --into-parent or --output"),
    ],
)
def test_bad_arguments_name_the_allowed_values(
    tmp_path: Path, args: list[str], message: str
) -> None:
    res = CliRunner().invoke(
        disk_group, [a.replace("x.vhd", str(tmp_path / "x.vhd")) for a in args]
    )
    assert res.exit_code != 0 and message in res.stderr, res.stderr
    assert not (tmp_path / "x.vhd").exists()


def test_disk_errors_are_one_line_on_stderr(tmp_path: Path) -> None:
    _, err = run("inspect", tmp_path / "missing.vhd", code=3)
    assert err.strip().count("\n") == 0 and "no such file" in err
    (tmp_path / "p.vhd").write_bytes(b"conectix" + bytes(1016))
    out, _ = run("check", tmp_path / "p.vhd", code=2)
    assert "[footer_invalid]" in out and "errors found" in out


def test_convert_compact_expand_merge_check_round_trip(tmp_path: Path) -> None:
    model = make_pattern(20 * MiB, seed=12, runs=8)
    raw = write_raw(tmp_path / "ref.raw", model)
    run("convert", raw, tmp_path / "d.vhd")
    run("convert", tmp_path / "d.vhd", tmp_path / "f.vhd", "--type", "fixed")
    assert qemu_same(raw, tmp_path / "f.vhd")
    run("new", tmp_path / "c.vhd", "--parent", tmp_path / "d.vhd")
    with open_disk(tmp_path / "c.vhd", writable=True) as c:
        c.write(0, b"\x09" * MiB)
    model[:MiB] = b"\x09" * MiB
    out, _ = run("merge", tmp_path / "c.vhd", "--output", tmp_path / "m.vhd")
    assert "m.vhd" in out
    run("merge", tmp_path / "c.vhd", "--into-parent")
    assert not (tmp_path / "c.vhd").exists()
    out, _ = run("compact", tmp_path / "d.vhd")
    assert "0 blocks freed" in out
    run("expand", tmp_path / "d.vhd", "--size", "30M")
    out, _ = run("check", tmp_path / "d.vhd", "--json")
    assert json.loads(out)["ok"] is True
    with open_disk(tmp_path / "d.vhd") as d, open_disk(tmp_path / "m.vhd") as m:
        assert d.read(0, 20 * MiB) == m.read(0, 20 * MiB) == model
        assert d.size == 30 * MiB


def test_check_exit_code_reports_damage_and_repair(tmp_path: Path) -> None:
    run("new", tmp_path / "d.vhd", "--size", "8M")
    with open(tmp_path / "d.vhd", "r+b") as f:
        f.seek(100)
        f.write(b"\xee")
    out, _ = run("check", tmp_path / "d.vhd", code=2)
    assert "[footer_copy_checksum]" in out and "(repairable)" in out
    out, _ = run("check", tmp_path / "d.vhd", "--repair")
    assert "repaired:" in out
    run("check", tmp_path / "d.vhd")
