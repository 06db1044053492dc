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
