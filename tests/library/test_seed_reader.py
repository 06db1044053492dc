"""The guest kit's NoCloud seed reader (src/viridian/guestkit/files/seed.sh), run by the
same busybox the guest uses, on the seed files viridian.library.cloudinit writes and on a
real ISO made by xorriso (its volume label read where the guest reads it)."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from viridian.library.cloudinit import Customisation, StaticAddress, User, numbered, seed_files

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB admin@host"
SEED_SH = resources.files("viridian.guestkit") / "files" / "seed.sh"

pytestmark = pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox")


def guest_sh(seed: Path, script: str) -> str:
    prelude = f"say() {{ echo \"SAY $*\"; }}\n. {SEED_SH}\nSEED_DIR={seed}\n"
    done = subprocess.run(["busybox", "sh", "-c", prelude + script], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def write_seed(folder: Path, custom: Customisation) -> Path:
    folder.mkdir()
    for name, text in seed_files(custom).as_files().items():
        (folder / name).write_text(text)
    return folder


def test_reader_gets_hostname_keys_runcmd_and_static_address(tmp_path: Path) -> None:
    base = Customisation("i", "web", (User("admin", (KEY, KEY.replace("B ", "C "))),),
                         StaticAddress("192.168.213.21/24", "192.168.213.1", ("1.1.1.1",)),
                         runcmd=('echo "a b" > /tmp/x',))
    seed = write_seed(tmp_path / "seed", numbered(base, 2, 3, "iid-2"))
    records = guest_sh(seed, "seed_records").splitlines()
    assert "hostname\tweb-2" in records and "local-hostname\tweb-2" in records
    assert f"key\tadmin\t{KEY}" in records and len([r for r in records if r[:4] == "key\t"]) == 2
    assert 'runcmd\techo "a b" > /tmp/x' in records
    assert records[-1].startswith("runcmd\tmkdir -p /run/viridian && echo ready > ")
    assert guest_sh(seed, "seed_network").strip() == \
        "static\t192.168.213.22/24\t192.168.213.1\t1.1.1.1"


def test_reader_falls_back_to_dhcp(tmp_path: Path) -> None:
    seed = write_seed(tmp_path / "seed", Customisation("i", "h"))
    assert guest_sh(seed, "seed_network").strip() == "dhcp"


def test_xorriso_seed_carries_the_label_the_guest_looks_for(tmp_path: Path) -> None:
    seed = write_seed(tmp_path / "seed", Customisation("i", "h"))
    iso = tmp_path / "seed.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-volid", "cidata", "-joliet",
                    "-rock", "-output", str(iso), *map(str, sorted(seed.iterdir()))],
                   check=True, capture_output=True, timeout=60)
    label = guest_sh(seed, f"dd if={iso} bs=1 skip=32808 count=6 2>/dev/null")
    assert label == "cidata"
