"""Probing cgroup mounts (pure) and writing VM groups, on a cgroup v2 tree made of plain
files (the real v1 hierarchy of this machine is exercised by tests/service/test_cpu_control)."""

from __future__ import annotations

from pathlib import Path

from viridian.host.cgroups import CgroupHost, ControllerMount, resolve_mounts
from viridian.host.cpu_policy import VMCpuDemand, cpu_controls

V1_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_PROC_CGROUP = "4:memory:/jobs/j1\n2:cpu,cpuacct:/\n0::/\n"


def test_v1_controllers_are_used_below_the_services_own_groups() -> None:
    mounts = resolve_mounts(V1_MOUNTINFO, V1_PROC_CGROUP)  # v2 here has no controllers
    cpu_parent = Path("/sys/fs/cgroup/cpu,cpuacct/viridian")
    assert mounts["cpu"] == ControllerMount("cpu", "v1", cpu_parent)
    assert mounts["memory"].parent == Path("/sys/fs/cgroup/memory/jobs/j1/viridian")


def test_v2_is_preferred_when_it_offers_the_controllers(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    mountinfo = f"30 23 0:26 / {tmp_path} rw - cgroup2 cgroup2 rw\n"
    mounts = resolve_mounts(mountinfo, "0::/system.slice/viridian.service/viridian-service\n")
    parent = tmp_path / "system.slice/viridian.service/viridian"
    assert {c: (m.version, m.parent) for c, m in mounts.items()} == {
        "cpu": ("v2", parent), "memory": ("v2", parent)}


def test_v2_group_files_are_written_and_read_back(tmp_path: Path) -> None:
    base = tmp_path / "svc"
    base.mkdir()
    (base / "cgroup.subtree_control").write_text("")
    mounts = {c: ControllerMount(c, "v2", base / "viridian") for c in ("cpu", "memory")}
    host = CgroupHost(mounts)  # type: ignore[arg-type]
    (base / "viridian").mkdir()
    (base / "viridian" / "cgroup.subtree_control").write_text("")
    host.place("vm1", 4242)
    group = base / "viridian" / "vm1"
    assert (group / "cgroup.procs").read_text() == "4242"
    assert (base / "cgroup.subtree_control").read_text() == "+cpu +memory"
    control = cpu_controls([VMCpuDemand("vm1", 2, 0, 25, 300)], 2)["vm1"]
    host.apply("vm1", control, 1 << 30)
    assert (group / "cpu.max").read_text() == "50000 100000"
    assert (group / "cpu.weight").read_text() == "300"
    assert (group / "memory.max").read_text() == str(1 << 30)
    state = host.read("vm1")
    assert state is not None
    assert (state.quota_us, state.weight_v2, state.memory_limit_bytes) == (50_000, 300, 1 << 30)
    assert state.pids == [4242]


def test_the_service_shelters_in_a_leaf_weighing_as_much_as_the_vm_group(tmp_path: Path) -> None:
    base = tmp_path / "svc"
    (base / "viridian" / "vm1").mkdir(parents=True)
    (base / "cgroup.subtree_control").write_text("")
    host = CgroupHost({"cpu": ControllerMount("cpu", "v2", base / "viridian")})
    leaf = host.shelter_service(4242)
    assert leaf == base / "viridian-service"
    assert (leaf / "cgroup.procs").read_text() == "4242"
    assert (base / "cgroup.subtree_control").read_text() == "+cpu"
    host.weigh_parent({"vm1"}, 3)
    assert (base / "viridian" / "cpu.weight").read_text() == "300"
    assert (leaf / "cpu.weight").read_text() == "300"
    assert CgroupHost({}).shelter_service(4242) is None  # no cpu controller: stays put
