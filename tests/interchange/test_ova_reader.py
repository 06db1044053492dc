"""Reading OVAs safely (issue 16 part 3, DSP0243 §5.3): the cot ``input`` package packed
as an OVA unpacks byte for byte; members that are links, devices, folders, absolute
names, ``..`` names, duplicates, a descriptor not first, a size other than the
descriptor's ``ovf:size``, a descriptor over 16 MiB or a truncated member are refused
naming the member, and nothing is written outside the target folder."""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from viridian.errors import BadRequest
from viridian.interchange.ova import unpack_ova

INPUT = ["input.ovf", "input.mf", "input.vmdk", "input.iso", "sample_cfg.txt"]


def _pack(ova: Path, members: list[tuple[str, bytes]],
          change: Callable[[tarfile.TarInfo], None] = lambda _: None) -> Path:
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            change(info)
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return ova


def _files(samples: Path) -> list[tuple[str, bytes]]:
    return [(name, (samples / name).read_bytes()) for name in INPUT]


def _unpack(tmp_path: Path, ova: Path) -> Path:
    folder = tmp_path / "staging"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return unpack_ova(ova, folder)


def test_cot_input_as_ova_unpacks(samples: Path, tmp_path: Path) -> None:
    ova = _pack(tmp_path / "input.ova", _files(samples))
    descriptor = _unpack(tmp_path, ova)
    assert descriptor == tmp_path / "staging" / "input.ovf"
    for name in INPUT:
        assert (descriptor.parent / name).read_bytes() == (samples / name).read_bytes()


@pytest.mark.parametrize(("name", "message"), [
    ("../x", "points outside the package"),
    ("/etc/x", "absolute name"),
    ("sub/x", "not a plain file name"),
    (".hidden", "not a plain file name")])
def test_bad_names_are_refused(samples: Path, tmp_path: Path, name: str,
                               message: str) -> None:
    ova = _pack(tmp_path / "bad.ova", [*_files(samples), (name, b"payload")])
    with pytest.raises(BadRequest, match=message):
        _unpack(tmp_path, ova)
    assert not (tmp_path / "x").exists() and sorted(p.name for p in tmp_path.iterdir()) \
        == ["bad.ova", "staging"]


@pytest.mark.parametrize(("kind", "message"), [
    (tarfile.SYMTYPE, "symbolic link"), (tarfile.LNKTYPE, "hard link"),
    (tarfile.CHRTYPE, "device"), (tarfile.DIRTYPE, "folder")])
def test_links_devices_folders_are_refused(samples: Path, tmp_path: Path, kind: bytes,
                                           message: str) -> None:
    def special(info: tarfile.TarInfo) -> None:
        if info.name == "evil":
            info.type, info.linkname, info.size = kind, "/etc/passwd", 0
    ova = _pack(tmp_path / "links.ova", [*_files(samples), ("evil", b"")], special)
    with pytest.raises(BadRequest, match=f"'evil' is (a|an) .*{message}"):
        _unpack(tmp_path, ova)
    assert list((tmp_path / "staging").iterdir()) == []  # refused before any data


def test_order_duplicates_sizes_truncation(samples: Path, tmp_path: Path) -> None:
    files = _files(samples)
    with pytest.raises(BadRequest, match=r"first member is 'input\.mf'"):
        _unpack(tmp_path, _pack(tmp_path / "order.ova", files[1:] + files[:1]))
    with pytest.raises(BadRequest, match="appears twice"):
        _unpack(tmp_path, _pack(tmp_path / "twice.ova", [*files, files[2]]))
    short = [(n, d[:-512] if n == "input.vmdk" else d) for n, d in files]
    with pytest.raises(BadRequest, match=r"input\.vmdk holds 152064 bytes, the "
                                         r"descriptor says 152576"):
        _unpack(tmp_path, _pack(tmp_path / "size.ova", short))
    whole = _pack(tmp_path / "cut.ova", files).read_bytes()
    (tmp_path / "cut.ova").write_bytes(whole[:20000])
    with pytest.raises(BadRequest, match=r"damaged tar|ends early"):
        _unpack(tmp_path, tmp_path / "cut.ova")
    huge = [("big.ovf", b" " * (16 << 20) + b" "), *files[1:]]
    with pytest.raises(BadRequest, match=r"descriptor big\.ovf holds 16777217 bytes"):
        _unpack(tmp_path, _pack(tmp_path / "huge.ova", huge))
    (tmp_path / "not.ova").write_bytes(b"hello")
    with pytest.raises(BadRequest, match="not an OVA"):
        _unpack(tmp_path, tmp_path / "not.ova")
