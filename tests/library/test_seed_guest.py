"""A real guest-kit guest (TCG, direct kernel boot) given a cloud-init NoCloud seed ISO
made from viridian.library.cloudinit's files by xorriso: it takes the host name, the
static address on eth0, the user's SSH key and runs the run commands (the last one
writing the "provisioned: ready" file), as its serial markers show."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.guestkit.qemu_guest import Agent, Guest
from viridian.library.cloudinit import (
    READY_FILE,
    Customisation,
    StaticAddress,
    User,
    numbered,
    seed_files,
)

pytestmark = pytest.mark.guest
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB admin@host"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    from viridian.guestkit import build

    images = build()
    work = tmp_path_factory.mktemp("seed-guest")
    base = Customisation("x", "web", (User("admin", (KEY,)),),
                         StaticAddress("192.168.213.21/24", "192.168.213.1"),
                         runcmd=("echo marker-$(hostname)",))
    files = seed_files(numbered(base, 2, 3, "iid-2"))
    for name, text in files.as_files().items():
        (work / name).write_text(text)
    iso = work / "seed.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-volid", "cidata", "-joliet",
                    "-rock", "-output", str(iso),
                    *(str(work / n) for n in ("meta-data", "user-data", "network-config"))],
                   check=True, capture_output=True, timeout=60)
    guest = Guest(work, "seeded guest", [
        *images.direct_boot_args(),
        "-drive", f"if=ide,index=2,media=cdrom,format=raw,readonly=on,file={iso}",
        "-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0"])
    try:
        yield guest
    finally:
        guest.kill()


def test_guest_applies_the_seed_and_reports_ready(seeded: Guest) -> None:
    seeded.wait_for(r"^VIRIDIAN-GUEST SEED-DONE")
    assert seeded.markers("SEED-HOSTNAME") == [["web-2"]]
    assert seeded.markers("SEED-ADDRESS") == [["eth0", "192.168.213.22/24"]]
    assert seeded.markers("SEED-USER") == [["admin", "1"]]
    assert seeded.markers("SEED-RUNCMD") == [["1", "0"], ["2", "0"]]
    assert ["marker-web-2"] in seeded.markers("CFG")
    agent = Agent(seeded.agent_socket)  # what the service reads: "provisioned: ready"
    try:
        agent.sync()
        code, out = agent.exec_shell(f"cat {READY_FILE}; hostname; ip -4 addr show dev eth0; "
                                     "cat /home/admin/.ssh/authorized_keys")
    finally:
        agent.close()
    assert code == 0, out
    assert out.startswith("ready\nweb-2\n"), out
    assert "inet 192.168.213.22/24" in out and KEY in out
