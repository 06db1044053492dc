"""``viridian backup …`` against a real service (an Off VM read from its files): new,
list, show, verify (exit 1 and the damaged block named once a byte flips), restore --as,
remove, schedule/schedules, and clear errors for a missing target and an unknown point."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.cli_harness import invoke
from tests.service.harness import Service, running_service


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str],
                                                                    dict[str, str | None],
                                                                    Path]]:
    work = tmp_path_factory.mktemp("backup-cli")
    disk = work / "disk.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o",
                    "subformat=dynamic,force_size=on", str(disk), "8M"], check=True)
    subprocess.run(["qemu-io", "-f", "vpc", "-c", "write -P 0x42 0 1M", str(disk)],
                   check=True, capture_output=True)
    (work / "target").mkdir()
    service: Service
    with running_service(host_settings={"storage_daemon": "off"}) as service:
        with service.client() as api:
            assert api.post("/vms", json={"name": "clivm", "memory_mb": 64,
                                          "vhd": str(disk)}).status_code == 201
        yield (["--url", service.url], {"VIRIDIAN_DATA_DIR": str(service.data_dir)}, work)


def test_backup_commands(cli: tuple[list[str], dict[str, str | None], Path]) -> None:
    url, env, work = cli
    target = work / "target"
    made = invoke([*url, "backup", "new", "clivm", "--to", str(target), "--json"], env=env)
    assert made.exit_code == 0, made.output
    point = json.loads(made.stdout)
    assert point["kind"] == "full"
    listed = invoke([*url, "backup", "list", "--vm", "clivm"], env=env)
    assert listed.exit_code == 0 and point["id"] in listed.stdout
    shown = invoke([*url, "backup", "show", point["id"]], env=env)
    assert json.loads(shown.stdout)["chain"] == [point["id"]]
    good = invoke([*url, "backup", "verify", point["id"]], env=env)
    assert good.exit_code == 0 and "every block matches" in good.stdout

    image = Path(point["folder"]) / "disks/ide-0-0.qcow2"
    data = bytearray(image.read_bytes())
    data[-100] ^= 0xFF
    image.write_bytes(bytes(data))
    bad = invoke([*url, "backup", "verify", point["id"]], env=env)
    assert bad.exit_code == 1 and "DAMAGED" in bad.stdout
    assert "disks/ide-0-0.qcow2: block" in bad.stderr

    again = invoke([*url, "backup", "new", "clivm", "--to", str(target)], env=env)
    assert again.exit_code == 0 and "full, crash-consistent" in again.stdout
    second = again.stdout.split()[1]
    restored = invoke([*url, "backup", "restore", second, "--as", "clivm-2"], env=env)
    assert restored.exit_code == 0 and "clivm-2 (Off)" in restored.stdout, restored.output
    removed = invoke([*url, "backup", "remove", point["id"]], env=env)
    assert removed.exit_code == 0 and not Path(point["folder"]).exists()

    sched = invoke([*url, "backup", "schedule", "clivm", "--to", str(target), "--every",
                    "1440"], env=env)
    assert sched.exit_code == 0 and "every 1440 minutes" in sched.stdout, sched.output
    assert "clivm" in invoke([*url, "backup", "schedules"], env=env).stdout
    assert invoke([*url, "backup", "schedule", "clivm", "--off"], env=env).exit_code == 0


Cli = tuple[list[str], dict[str, str | None], Path]


def test_missing_target_and_unknown_point_are_refused(cli: Cli) -> None:
    url, env, work = cli
    missing = invoke([*url, "backup", "new", "clivm", "--to", str(work / "nowhere")], env=env)
    assert missing.exit_code != 0 and "not an existing folder" in missing.stderr
    nothing = invoke([*url, "backup", "restore", "no-such-id"], env=env)
    assert nothing.exit_code != 0 and "no backup with id no-such-id" in nothing.stderr


def test_all_vms_and_restore_to_time(cli: Cli) -> None:
    """``backup new --all``: every VM gets a point, one whose disk file is gone fails
    (exit 1 naming it) without stopping the others; ``restore VM --to-time`` picks the
    newest point at or before the time and refuses a time before every point."""
    url, env, work = cli
    lost = work / "lost.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", str(lost), "4M"], check=True)
    made = invoke([*url, "vm", "new", "lostdisk", "--memory", "64MB", "--vhd", str(lost)],
                  env=env)
    assert made.exit_code == 0, made.output
    lost.unlink()
    target = work / "all"
    target.mkdir()
    everyone = invoke([*url, "backup", "new", "--all", "--to", str(target)], env=env)
    assert everyone.exit_code == 1, everyone.output
    assert "lostdisk: FAILED" in everyone.stderr
    assert "the backup of 1 VM(s) failed: lostdisk" in everyone.stderr
    assert "of clivm: full" in everyone.stdout
    points = {p["vm_name"]: p for p in json.loads(invoke([*url, "backup", "list", "--json"],
                                                         env=env).stdout)}
    assert points["clivm"]["folder"].startswith(str(target / "clivm"))
    assert "lostdisk" not in points and len(points) > 0
    both = invoke([*url, "backup", "new", "clivm", "--all", "--to", str(target)], env=env)
    assert both.exit_code != 0 and "give a VM or --all" in both.output
    memory = invoke([*url, "backup", "new", "--all", "--to", str(target), "--with-memory"],
                    env=env)
    assert "clivm: without memory: it is Off" in memory.stderr, memory.output
    assert "of clivm: full" in memory.stdout

    newest = points["clivm"]
    when = newest["created_at"]
    back = invoke([*url, "backup", "restore", "clivm", "--to-time", when, "--as", "clivm-t"],
                  env=env)
    assert back.exit_code == 0, back.output
    assert f"restored {newest['id']} as a VM: clivm-t (Off)" in back.stdout
    assert "point in time: " in back.stdout
    early = invoke([*url, "backup", "restore", "clivm", "--to-time", "2001-01-01 10:00"],
                   env=env)
    assert early.exit_code != 0 and "no backup point of VM 'clivm' is as old as" in \
        early.stderr and "the oldest is " in early.stderr, early.output
    bad = invoke([*url, "backup", "restore", "clivm", "--to-time", "yesterday"], env=env)
    assert bad.exit_code == 2 and "ISO 8601" in bad.output
