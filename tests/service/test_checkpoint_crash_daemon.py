"""The crash window of a standard checkpoint on a VM its storage daemon serves: between
the overlay switch in the daemon and the journal/catalog commit (docs/architecture.md,
"Crash-safety rules"). The service is SIGKILLed right before the switch
(``take.switching``) and right after it (``take.snapshotted``, the switch not journaled
yet), each once with the daemon surviving and once with the daemon SIGKILLed too while the
service is down. After the restart the take is finished when the switch is seen in the
daemon (a daemon started again opens the switching take's overlays: the disks as QEMU
sees them follow the journal) and undone otherwise; the guest runs on, Now lost nothing,
no file is orphaned, and every surviving checkpoint reads exactly what it captured.

One real guest (guest kit ISO, a VHD data disk at IDE 0:0, host setting
``storage_daemon: vhd``, the default) for the module.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.qemu_processes import qemu_under
from tests.service.harness import Console, act, running_service, wait_job
from tests.service.test_checkpoint_crash import (
    VM,
    Crashy,
    assert_consistent,
    expected,
    markers,
    names,
    write_marker,
)

pytestmark = [pytest.mark.guest, pytest.mark.xdist_group("checkpoint_crash_daemon")]


@pytest.fixture(scope="module")
def crashy(guest_iso: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crashy]:
    disk = tmp_path_factory.mktemp("crashd") / "data.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", str(disk), "16M"], check=True)
    with running_service(host_settings={"storage_daemon": "vhd"}) as service, \
            service.client() as api:
        created = api.post("/vms", json={"name": VM, "memory_mb": 256, "dvd": str(guest_iso),
                                         "vhd": str(disk)})
        assert created.status_code == 201, created.text
        act(api, VM, "start")
        Console(service.data_dir, created.json()["id"]).wait_for(b"VIRIDIAN-GUEST READY")
        yield Crashy(service)


def daemon_pids(data_dir: Path) -> list[int]:
    return [p.pid for p in qemu_under(data_dir) if "qemu-storage-daemon" in p.cmdline]


# (fault point, SIGKILL the daemon too while the service is down, checkpoint survives)
WINDOW = [("take.switching", False, False), ("take.snapshotted", False, True),
          ("take.switching", True, True), ("take.snapshotted", True, True)]


def test_killed_between_the_daemon_switch_and_the_commit_nothing_is_lost(
        crashy: Crashy) -> None:
    with crashy.api as api:
        write_marker(api, 0)
        job = wait_job(api, api.post(f"/vms/{VM}/checkpoints", json={"name": "anchor"}).json())
        assert job["state"] == "completed", job
    [daemon] = daemon_pids(crashy.service.data_dir)
    taken: dict[str, int] = {"anchor": 1}  # checkpoint → markers it must hold
    count = 1
    for point, kill_daemon, survives in WINDOW:
        name = f"{point}{'+daemon' if kill_daemon else ''}"
        with crashy.api as api:
            write_marker(api, count)
        count += 1
        crashy.arm(point)
        with crashy.api as api:
            api.post(f"/vms/{VM}/checkpoints", json={"name": name})
        assert crashy.service.process is not None
        crashy.service.process.wait(timeout=120)  # the fault point killed the service
        if kill_daemon:
            os.kill(daemon, signal.SIGKILL)
        crashy.crashed_then_restart()
        with crashy.api as api:
            assert_consistent(api)
            assert (name in names(api)) is survives, name
            assert markers(api, count) == expected(count)  # Now lost nothing
        [daemon] = daemon_pids(crashy.service.data_dir)
        if survives:
            taken[name] = count

    with crashy.api as api:  # every surviving checkpoint reads exactly what it captured
        for name, held in taken.items():
            job = wait_job(api, api.post(f"/vms/{VM}/checkpoints/{name}/apply").json(), 180)
            assert job["state"] == "completed", job
            assert markers(api, count) == expected(held) + [""] * (count - held), name
        assert_consistent(api)
