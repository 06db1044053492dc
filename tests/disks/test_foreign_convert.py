"""``disk convert`` from VMDK (every variant) and qcow2, and into qcow2 (issue 16 part 4):
the output holds the same data as the source (``qemu-img compare``); a split
twoGbMaxExtentSparse VMDK converts equal; a VMDK naming a file outside its folder is
refused (library and CLI, nothing written); the VMDK descriptor reader finds every
extent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from viridian.disks import convert
from viridian.disks.errors import InvalidDiskArgument, UnsupportedDisk
from viridian.disks.vmdk import read_vmdk

SCRIPT = Path(sys.executable).with_name("viridian")
MB = 1 << 20


def _raw(path: Path, size: int, marks: dict[int, bytes]) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in marks.items():
            f.seek(offset)
            f.write(data)
    return path


def _vmdk(folder: Path, raw: Path, subformat: str) -> Path:
    out = folder / f"{subformat}.vmdk"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", "-o",
                    f"subformat={subformat}", str(raw), str(out)], check=True)
    return out


def _same(a: Path, b: Path) -> None:
    done = subprocess.run(["qemu-img", "compare", "-U", str(a), str(b)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize("subformat", ["monolithicSparse", "monolithicFlat", "streamOptimized"])
def test_vmdk_variants_convert_equal(tmp_path: Path, subformat: str) -> None:
    raw = _raw(tmp_path / "src.raw", 16 * MB, {0: b"boot" * 128, 9 * MB + 512: b"\x5a" * 8192})
    vmdk = _vmdk(tmp_path, raw, subformat)
    assert read_vmdk(vmdk).create_type == subformat
    for target, name in (("dynamic", "out.vhd"), ("fixed", "fixed.vhdx"), ("raw", "out.raw")):
        convert(vmdk, tmp_path / name, target)
        _same(raw, tmp_path / name)
    assert not _leftovers(tmp_path)


def test_split_vmdk_converts_equal(tmp_path: Path) -> None:
    size = (2 << 30) + 8 * MB
    raw = _raw(tmp_path / "big.raw", size, {MB: b"first" * 100, size - 3 * MB: b"last" * 100})
    vmdk = _vmdk(tmp_path, raw, "twoGbMaxExtentSparse")
    descriptor = read_vmdk(vmdk)
    assert descriptor.size == size and len(descriptor.extents) == 2
    assert all(e.file and e.file.parent == tmp_path for e in descriptor.extents)
    convert(vmdk, tmp_path / "big.vhdx", "dynamic")
    _same(raw, tmp_path / "big.vhdx")


def test_qcow2_source_and_target(tmp_path: Path) -> None:
    raw = _raw(tmp_path / "src.raw", 8 * MB, {3 * MB: b"\x77" * 4096})
    qcow2 = tmp_path / "src.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw),
                    str(qcow2)], check=True)
    convert(qcow2, tmp_path / "from-qcow2.vhd", "dynamic")
    _same(raw, tmp_path / "from-qcow2.vhd")
    fixed = tmp_path / "fixed.vhd"
    convert(raw, fixed, "fixed")  # a fixed VHD: QEMU's own probe would call it raw
    convert(fixed, tmp_path / "back.qcow2", "qcow2")
    info = subprocess.run(["qemu-img", "info", "--output=json", str(tmp_path / "back.qcow2")],
                          capture_output=True, text=True, check=True).stdout
    assert '"virtual-size": 8388608' in info and '"format": "qcow2"' in info
    _same(raw, tmp_path / "back.qcow2")


def test_escaping_vmdk_refused(tmp_path: Path) -> None:
    secret = _raw(tmp_path / "secret.raw", 4096, {0: b"S" * 4096})
    folder = tmp_path / "disk"
    folder.mkdir()
    (folder / "link.raw").symlink_to(secret)
    for name in ("../secret.raw", str(secret), "link.raw"):
        evil = folder / "evil.vmdk"
        evil.write_text('# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n'
                        f'RW 8 FLAT "{name}" 0\n')
        with pytest.raises(InvalidDiskArgument, match="outside the disk's folder"):
            convert(evil, folder / "out.vhd")
        assert sorted(p.name for p in folder.iterdir()) == ["evil.vmdk", "link.raw"]
    (folder / "link.raw").unlink()
    odd = folder / "odd.vmdk"
    _raw(folder / "flat.raw", 512, {})
    odd.write_text('# Disk DescriptorFile\ncreateType="custom"\nRW 1 FLAT "flat.raw" 0\n')
    with pytest.raises(UnsupportedDisk, match="allowed: monolithicSparse"):
        read_vmdk(odd)
    (folder / "evil.vmdk").write_text('# Disk DescriptorFile\ncreateType="monolithicFlat"\n'
                                      'RW 8 FLAT "../secret.raw" 0\n')
    env = {**os.environ, "VIRIDIAN_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([str(SCRIPT), "disk", "convert", str(folder / "evil.vmdk"),
                           str(folder / "out.vhd")], capture_output=True, text=True, env=env,
                          check=False)
    assert done.returncode == 2 and "outside the disk's folder" in done.stderr, done
    assert not (folder / "out.vhd").exists() and not _leftovers(folder)


def test_cli_converts_a_vmdk(tmp_path: Path) -> None:
    raw = _raw(tmp_path / "src.raw", 8 * MB, {MB: b"\x42" * 512})
    _vmdk(tmp_path, raw, "streamOptimized")
    env = {**os.environ, "VIRIDIAN_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([str(SCRIPT), "disk", "convert", "streamOptimized.vmdk", "o.vhd"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "converted streamOptimized.vmdk to dynamic o.vhd\n"
    _same(raw, tmp_path / "o.vhd")
    bad = subprocess.run([str(SCRIPT), "disk", "convert", "o.vhd", "o2.raw", "--type",
                          "qcow2"], capture_output=True, text=True, env=env, cwd=tmp_path,
                         check=False)
    assert bad.returncode == 2 and "must be named *.qcow2" in bad.stderr


def test_sparse_embedded_descriptors(tmp_path: Path) -> None:
    for subformat in ("monolithicSparse", "streamOptimized", "monolithicFlat"):
        disk = tmp_path / f"{subformat}.vmdk"
        subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", "-o",
                        f"subformat={subformat}", str(disk), "64M"], check=True)
        assert (read_vmdk(disk).create_type, read_vmdk(disk).size) == (subformat, 64 * MB)


def test_qcow2_backing_chain_must_stay_in_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    base = _raw(folder / "base.raw", 8 * MB, {2 * MB: b"\x33" * 4096})
    child = folder / "child.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw",
                    str(child)], check=True)
    convert(child, folder / "flat.vhd", "dynamic")  # the chain is flattened
    _same(base, folder / "flat.vhd")
    secret = _raw(tmp_path / "secret.raw", 8 * MB, {0: b"S" * 4096})
    for backing in (str(secret), "../secret.raw"):
        evil = folder / "evil.qcow2"
        evil.unlink(missing_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F",
                        "raw", str(evil), "8M"], check=True)
        with pytest.raises(InvalidDiskArgument, match="outside the disk's folder"):
            convert(evil, folder / "out.vhd", "dynamic")
        assert not (folder / "out.vhd").exists() and not _leftovers(folder)


def test_quota_counts_a_foreign_image_at_its_virtual_size(tmp_path: Path) -> None:
    from viridian.service.disk_wizard.quota import capacity_of

    for fmt, options in (("vmdk", "subformat=twoGbMaxExtentSparse"), ("qcow2", "")):
        image = tmp_path / f"x.{fmt}"
        subprocess.run(["qemu-img", "create", "-q", "-f", fmt, *(["-o", options] if options
                                                                 else []),
                        str(image), "3G"], check=True)
        assert capacity_of(image) == 3 << 30  # not the few bytes of its header file
