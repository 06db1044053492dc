"""SIGKILL the service at every step of take, apply and delete (fault points injected
through ``$VIRIDIAN_FAULT_POINTS``); after a restart the operation is finished or undone,
the guest runs on, no checkpoint or data is lost and no file is orphaned.

One real guest (running the whole time, except where apply restarts it) writes a marker
before each operation; at the end every surviving checkpoint is applied and must read
exactly the markers written before it was taken.
"""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Console, Service, act, running_service, wait_job

pytestmark = [pytest.mark.guest, pytest.mark.xdist_group("checkpoint_crash")]

VM = "crashy"
FIRST_SECTOR = 100


def guest_sh(api: httpx.Client, script: str) -> bytes:
    deadline = time.monotonic() + 60
    while True:  # after a restore the agent channel needs a moment
        reply = api.post(f"/vms/{VM}/integration/exec",
                         json={"argv": ["/bin/sh", "-c", script], "timeout_s": 60})
        if reply.status_code == 200:
            break
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.5)
    body = reply.json()
    assert body["exit_code"] == 0, base64.b64decode(body["stderr_b64"])
    return base64.b64decode(body["stdout_b64"])


def write_marker(api: httpx.Client, index: int) -> None:
    guest_sh(api, f"printf 'M{index:03d}' | dd of=/dev/sda bs=512 seek={FIRST_SECTOR + index} "
                  "conv=notrunc,sync 2>/dev/null && sync")


def markers(api: httpx.Client, count: int) -> list[str]:
    script = "echo 3 > /proc/sys/vm/drop_caches; " + "; ".join(
        f"dd if=/dev/sda bs=512 skip={FIRST_SECTOR + i} count=1 2>/dev/null | head -c 4; echo"
        for i in range(count))
    return [line.strip("\0") for line in guest_sh(api, script).decode().split("\n")[:count]]


def expected(count: int) -> list[str]:
    return [f"M{i:03d}" for i in range(count)]


class Crashy:
    """The service under test, restartable with or without a fault point."""

    def __init__(self, service: Service) -> None:
        self.service = service

    @property
    def api(self) -> httpx.Client:
        return self.service.client()

    def arm(self, point: str) -> None:
        self.service.stop()
        self.service.env["VIRIDIAN_FAULT_POINTS"] = point
        self.service.start(timeout=120)  # a loaded host may take longer than 30 s

    def crashed_then_restart(self) -> None:
        assert self.service.process is not None
        self.service.process.wait(timeout=120)  # the fault point killed it
        self.service.env.pop("VIRIDIAN_FAULT_POINTS", None)
        self.service.start(timeout=120)


@pytest.fixture(scope="module")
def crashy(guest_iso: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crashy]:
    disk = tmp_path_factory.mktemp("crash") / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    with running_service() as service, service.client() as api:
        created = api.post("/vms", json={"name": VM, "memory_mb": 256, "dvd": str(guest_iso),
                                         "vhd": str(disk)})
        assert created.status_code == 201, created.text
        act(api, VM, "start")
        Console(service.data_dir, created.json()["id"]).wait_for(b"VIRIDIAN-GUEST READY")
        yield Crashy(service)


def tree(api: httpx.Client) -> dict[str, Any]:
    return dict(api.get(f"/vms/{VM}/checkpoints").json())


def assert_consistent(api: httpx.Client) -> dict[str, Any]:
    """Every file the tree names exists; the checkpoint folder holds nothing else; the VM
    is Running; the guest answers."""
    view = tree(api)
    named = set(view["now_disks"].values())
    for cp in view["checkpoints"]:
        named |= set(cp["disks"].values())
        if cp["memory_file"]:
            named.add(cp["memory_file"])
    folder = Path(view["folder"])
    present = {str(p) for p in folder.iterdir()} if folder.exists() else set()
    assert present == {p for p in named if p.startswith(str(folder))}, (present, named)
    assert all(Path(p).exists() for p in named)
    assert api.get(f"/vms/{VM}").json()["state"] == "Running"
    return view


def names(api: httpx.Client) -> set[str]:
    return {cp["name"] for cp in tree(api)["checkpoints"]}


TAKE_POINTS = [("take.planned", False), ("take.overlays", False), ("take.paused", False),
               ("take.switched", True), ("take.memory", True), ("take.committed", True)]


def test_killed_at_every_step_nothing_is_lost(crashy: Crashy) -> None:
    with crashy.api as api:
        write_marker(api, 0)
        job = wait_job(api, api.post(f"/vms/{VM}/checkpoints", json={"name": "anchor"}).json())
        assert job["state"] == "completed", job
    taken: dict[str, int] = {"anchor": 1}  # checkpoint → markers it must hold
    count = 1

    # take: undone before QEMU switched disks, finished after
    for point, survives in TAKE_POINTS:
        with crashy.api as api:
            write_marker(api, count)
        count += 1
        crashy.arm(point)
        with crashy.api as api:
            api.post(f"/vms/{VM}/checkpoints", json={"name": point})
        crashy.crashed_then_restart()
        with crashy.api as api:
            assert_consistent(api)
            assert (point in names(api)) is survives, point
            assert markers(api, count) == expected(count)  # Now lost nothing
        if survives:
            taken[point] = count

    # delete: always finished
    for point, victim in (("delete.planned", "take.switched"), ("delete.step0", "take.memory")):
        crashy.arm(point)
        with crashy.api as api:
            api.delete(f"/vms/{VM}/checkpoints/{victim}")
        crashy.crashed_then_restart()
        with crashy.api as api:
            assert_consistent(api)
            assert victim not in names(api)
            assert markers(api, count) == expected(count)
        del taken[victim]

    # apply: always finished; the guest comes back from the checkpoint's memory
    for point in ("apply.planned", "apply.stopped", "apply.overlays", "apply.committed"):
        crashy.arm(point)
        with crashy.api as api:
            api.post(f"/vms/{VM}/checkpoints/anchor/apply")
        crashy.crashed_then_restart()
        with crashy.api as api:
            view = assert_consistent(api)
            assert view["now_parent_id"] == next(
                cp["id"] for cp in view["checkpoints"] if cp["name"] == "anchor")
            assert markers(api, count) == expected(1) + [""] * (count - 1)
            write_marker(api, 1)  # differ from the anchor before the next apply

    # every surviving checkpoint still reads exactly what it captured
    with crashy.api as api:
        for name, held in taken.items():
            job = wait_job(api, api.post(f"/vms/{VM}/checkpoints/{name}/apply").json(), 180)
            assert job["state"] == "completed", job
            assert markers(api, count) == expected(held) + [""] * (count - held), name
        assert_consistent(api)
