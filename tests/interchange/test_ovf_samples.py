"""The OVF reader and manifest check on real samples (issue 16 part 3): the test files of
the PyPI package ``cot`` (MIT), fetched with ``pip download`` into a cache folder —
VMware OVF 1.x, VirtualBox OVF 2.0, OVF 0.9, a minimal and an invalid descriptor, and a
manifest with SHA-1 digests (and one with SHA-256)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from viridian.errors import BadRequest
from viridian.interchange.manifest import verify_manifest
from viridian.interchange.ovf import parse_ovf


def _read(folder: Path, name: str) -> bytes:
    return (folder / name).read_bytes()


def test_vmware_ovf_1(samples: Path) -> None:
    system = parse_ovf(_read(samples, "vmware.ovf"))
    assert (system.name, system.memory_mb, system.processors) == ("vmw", 1536, 2)
    [disk] = [d for d in system.drives if d.kind == "hard_disk"]
    assert (disk.bus, disk.controller, disk.location, disk.file) == ("scsi", 0, 0,
                                                                     "input.vmdk")
    assert disk.format and disk.format.endswith("#streamOptimized")
    assert disk.capacity == 1 << 30
    assert [n.adapter_type for n in system.nics] == ["E1000"] * len(system.nics)
    assert system.nics[0].network == "lanethernet0"
    assert any("Video card" in u for u in system.unmapped)


def test_virtualbox_ovf_2(samples: Path) -> None:
    system = parse_ovf(_read(samples, "ubuntu.2.0.ovf"))
    assert (system.name, system.memory_mb, system.processors) == ("ubuntu", 512, 1)
    disk = next(d for d in system.drives if d.kind == "hard_disk")
    assert (disk.bus, disk.file, disk.capacity) == ("sata", "ubuntu.2.0-disk1.vmdk", 8 << 30)
    dvd = next(d for d in system.drives if d.kind == "dvd")
    assert (dvd.bus, dvd.controller, dvd.location, dvd.file) == ("ide", 1, 0, None)
    assert [(n.adapter_type, n.network) for n in system.nics] == [("E1000", "NAT")]
    assert any("sound" in u for u in system.unmapped)


def test_ovf_0_9_minimal_and_input(samples: Path) -> None:
    old = parse_ovf(_read(samples, "v0.9.ovf"))
    assert (old.memory_mb, old.processors) == (8192, 1)
    assert any(d.kind == "hard_disk" and d.file == "input.vmdk" for d in old.drives)
    minimal = parse_ovf(_read(samples, "minimal.ovf"))
    assert (minimal.name, minimal.drives, minimal.nics) == ("x", (), ())
    full = parse_ovf(_read(samples, "input.ovf"))
    assert any(d.kind == "hard_disk" and d.file == "input.vmdk" for d in full.drives)


def test_invalid_ovf_lists_what_cannot_be_mapped(samples: Path) -> None:
    system = parse_ovf(_read(samples, "invalid.ovf"))
    assert not [d for d in system.drives if d.kind == "hard_disk"]
    assert any("nonexistent.vmdk" in u for u in system.unmapped)
    assert any("controller (27)" in u for u in system.unmapped)
    assert len(system.broken) == 2  # refused on import
    assert not parse_ovf(_read(samples, "vmware.ovf")).broken


def test_not_ovf_is_refused() -> None:
    with pytest.raises(BadRequest, match="not XML"):
        parse_ovf(b"<Envelope")
    with pytest.raises(BadRequest, match="not an OVF envelope"):
        parse_ovf(b"<domain/>")


def test_manifests_sha1_and_sha256(samples: Path, tmp_path: Path) -> None:
    assert verify_manifest(samples / "input.mf") == [
        "input.ovf", "input.vmdk", "input.iso", "sample_cfg.txt"]
    assert verify_manifest(samples / "ubuntu.2.0.mf") == [
        "ubuntu.2.0.ovf", "ubuntu.2.0-disk1.vmdk"]
    for name in ("input.mf", "input.ovf", "input.vmdk", "input.iso", "sample_cfg.txt"):
        shutil.copy(samples / name, tmp_path / name)
    with (tmp_path / "input.vmdk").open("r+b") as disk:
        disk.seek(1000)
        disk.write(b"X")
    with pytest.raises(BadRequest, match=r"input\.vmdk: SHA1 is .* the package is damaged"):
        verify_manifest(tmp_path / "input.mf")
    (tmp_path / "input.iso").unlink()
    (tmp_path / "input.mf").write_text("SHA1(input.iso)= 00\n")
    with pytest.raises(BadRequest, match="not in the package"):
        verify_manifest(tmp_path / "input.mf")
