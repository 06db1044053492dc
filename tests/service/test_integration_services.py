"""Hyper-V's integration services on qemu-guest-agent, against one real guest (TCG).

The guest boots from the guest-kit ISO with a blank raw disk at IDE 0:0 (``/dev/sda``
in the guest), which a test formats and mounts to have a real file system to freeze.
The CLI commands run as subprocesses against the real service.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Console, Service, act, running_service

pytestmark = [pytest.mark.guest, pytest.mark.xdist_group("integration_services")]

VM = "kit"


def guest(api: httpx.Client, *argv: str, timeout_s: float = 30) -> tuple[int, str, str]:
    response = api.post(f"/vms/{VM}/integration/exec",
                        json={"argv": list(argv), "timeout_s": timeout_s})
    assert response.status_code == 200, response.text
    body = response.json()
    return (body["exit_code"], base64.b64decode(body["stdout_b64"]).decode(),
            base64.b64decode(body["stderr_b64"]).decode())


def cli(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    return subprocess.run([sys.executable, "-m", "viridian.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def wait_for(api: httpx.Client, check: Any, what: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        vm: dict[str, Any] = api.get(f"/vms/{VM}").json()
        if check(vm):
            return vm
        assert time.monotonic() < deadline, f"{what} not seen: {vm.get('integration')}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def running(guest_iso: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Service, httpx.Client, Console]]:
    blank = tmp_path_factory.mktemp("disks") / "blank.img"
    with open(blank, "wb") as f:
        f.truncate(16 * 2**20)
    with running_service() as service, service.client() as api:
        vm = api.post("/vms", json={"name": VM, "memory_mb": 256, "dvd": str(guest_iso),
                                    "vhd": str(blank)})
        assert vm.status_code == 201, vm.text
        console = Console(service.data_dir, vm.json()["id"])
        act(api, VM, "start")
        console.wait_for(b"VIRIDIAN-GUEST READY")
        yield service, api, console


def test_heartbeat_ok_and_guest_kvp_values_appear(
    running: tuple[Service, httpx.Client, Console],
) -> None:
    service, api, _ = running
    vm = wait_for(api, lambda v: v["integration"]["guest"], "guest key-value pairs")
    assert vm["heartbeat"] == "OK"
    assert vm["integration"]["guest"]["host_name"] == "viridian-guest"
    assert vm["integration"]["guest"]["os"]["id"] == "viridian-guestkit"
    listed = cli(service, "vm", "list")
    assert "Heartbeat" in listed.stdout.splitlines()[0]
    assert f"{VM} " in listed.stdout and " OK " in listed.stdout, listed.stdout
    shown = cli(service, "vm", "show", VM).stdout
    assert "Guest host name:" in shown and "viridian-guest" in shown, shown


def test_host_kvp_values_are_pushed_into_the_guest(
    running: tuple[Service, httpx.Client, Console],
) -> None:
    service, api, _ = running
    result = cli(service, "vm", "integration", VM, "--set-kvp", "role=web",
                 "--set-kvp", "site=north")
    assert result.returncode == 0, result.stderr
    assert "Host KVP:     role=web" in result.stdout
    assert guest(api, "/bin/cat", "/run/viridian-kvp")[1] == "role=web\nsite=north\n"
    cli(service, "vm", "integration", VM, "--remove-kvp", "site")
    assert guest(api, "/bin/cat", "/run/viridian-kvp")[1] == "role=web\n"
    bad = api.put(f"/vms/{VM}/integration/kvp", json={"items": {"a=b": "c"}})
    assert bad.status_code == 400 and "without '='" in bad.json()["error"]["message"]


def test_exec_returns_exit_code_stdout_and_stderr(
    running: tuple[Service, httpx.Client, Console],
) -> None:
    service, api, _ = running
    assert guest(api, "/bin/sh", "-c", "echo out; echo err >&2; exit 7") == (7, "out\n", "err\n")
    result = cli(service, "vm", "exec", VM, "--", "/bin/sh", "-c", "uname -n; exit 3")
    assert (result.returncode, result.stdout) == (3, "viridian-guest\n"), result.stderr
    missing = api.post(f"/vms/{VM}/integration/exec", json={"argv": ["/no/such/program"]})
    assert missing.status_code == 500 and "/no/such/program" in missing.text


def test_exec_output_past_the_agents_cap_is_marked_cut(
    running: tuple[Service, httpx.Client, Console],
) -> None:
    service, api, _ = running
    script = "head -c 17000000 /dev/zero; echo small >&2"
    body = api.post(f"/vms/{VM}/integration/exec",
                    json={"argv": ["/bin/sh", "-c", script], "timeout_s": 600}).json()
    assert (body["stdout_truncated"], body["stderr_truncated"]) == (True, False), body.keys()
    assert base64.b64decode(body["stderr_b64"]) == b"small\n"
    result = subprocess.run(
        [sys.executable, "-m", "viridian.cli.main", "vm", "exec", "--timeout", "600", VM,
         "--", "/bin/sh", "-c", script],
        env={**os.environ, "VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token},
        capture_output=True, timeout=900)
    assert result.returncode == 0, result.stderr[-500:]
    assert 16 * 2**20 <= len(result.stdout) < 17_000_000
    assert b"output truncated" in result.stdout[-200:]
    note = result.stderr.decode()
    assert note.startswith("small\n") and "stdout was cut" in note, note
    short = cli(service, "vm", "exec", VM, "--", "/bin/echo", "hi")
    assert (short.stdout, short.stderr) == ("hi\n", "")


def test_copy_file_content_reads_back_in_the_guest(
    running: tuple[Service, httpx.Client, Console], tmp_path: Path,
) -> None:
    service, api, _ = running
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(200_000))  # several guest-file-write chunks
    result = cli(service, "vm", "copy-file", VM, str(source), "/tmp/payload.bin")
    assert result.returncode == 0, result.stderr
    assert "200000 bytes" in result.stdout
    code, out, _ = guest(api, "/bin/sh", "-c", "md5sum /tmp/payload.bin | cut -d' ' -f1")
    assert (code, out.strip()) == (0, hashlib.md5(source.read_bytes()).hexdigest())
    again = cli(service, "vm", "copy-file", VM, str(source), "/tmp/payload.bin")
    assert again.returncode == 4 and "already exists" in again.stderr
    source.write_text("second\n")
    forced = cli(service, "vm", "copy-file", VM, str(source), "/tmp/payload.bin", "--force")
    assert forced.returncode == 0, forced.stderr
    assert guest(api, "/bin/cat", "/tmp/payload.bin")[1] == "second\n"


EXT4_MODULES = ("crypto/crc32c_generic.ko", "lib/crc16.ko", "fs/mbcache.ko", "fs/jbd2/jbd2.ko",
                "fs/ext4/ext4.ko")


def _ext4_modules(guest_iso: Path, folder: Path) -> list[Path]:
    """ext4 and its dependencies from the guest kit's cached kernel package (the guest
    kit itself ships no block file system driver)."""
    debs = sorted(guest_iso.parents[2].glob("cache/debs/linux-image-*.deb"))
    assert debs, f"no kernel package cached next to {guest_iso}"
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(debs[-1])], check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder), "--wildcards",
                    *[f"./lib/modules/*/kernel/{m}" for m in EXT4_MODULES]],
                   input=tar, check=True)
    return [next(folder.glob(f"lib/modules/*/kernel/{m}")) for m in EXT4_MODULES]


def test_backup_freezes_and_thaws_the_guest_file_systems(
    running: tuple[Service, httpx.Client, Console], guest_iso: Path, tmp_path: Path,
) -> None:
    _, api, _ = running
    for module in _ext4_modules(guest_iso, tmp_path):  # copy-file brings the driver in
        copied = api.post(f"/vms/{VM}/integration/files", json={
            "path": f"/tmp/{module.name}", "overwrite": True,
            "content_b64": base64.b64encode(module.read_bytes()).decode()})
        assert copied.status_code == 200, copied.text
        code, _, err = guest(api, "/sbin/insmod", f"/tmp/{module.name}")
        assert code == 0, err
    code, _, err = guest(api, "/bin/sh", "-c",
                         "mke2fs -q /dev/sda && mount -t ext4 /dev/sda /mnt && echo a > /mnt/a")
    assert code == 0, (err, guest(api, "/bin/sh", "-c", "dmesg | tail -20"))
    assert api.get(f"/vms/{VM}/integration/backup").json() == {"status": "thawed"}
    frozen = api.post(f"/vms/{VM}/integration/backup/freeze")
    assert frozen.status_code == 200, frozen.text
    assert frozen.json()["file_systems"] == 1
    assert api.get(f"/vms/{VM}/integration/backup").json() == {"status": "frozen"}
    thawed = api.post(f"/vms/{VM}/integration/backup/thaw").json()
    assert thawed == {"status": "thawed", "file_systems": 1}
    assert guest(api, "/bin/sh", "-c", "echo b > /mnt/b && cat /mnt/a /mnt/b")[1] == "a\nb\n"


def test_time_is_synchronised_after_a_restore(
    running: tuple[Service, httpx.Client, Console],
) -> None:
    _, api, _ = running
    guest(api, "/bin/date", "-s", f"@{int(time.time()) - 3600}")  # the guest clock runs late
    act(api, VM, "save")
    time.sleep(3)
    act(api, VM, "start")
    wait_for(api, lambda v: v["integration"]["time_sync"].get("after") == "restore",
             "time synchronisation after restore")
    code, out, _ = guest(api, "/bin/date", "+%s")
    assert code == 0 and abs(int(out) - time.time()) <= 2, (out, time.time())


def test_switched_off_services_are_refused_and_shutdown_uses_acpi(
    running: tuple[Service, httpx.Client, Console],
) -> None:
    service, api, _ = running
    result = cli(service, "vm", "integration", VM, "--disable", "guest-services",
                 "--disable", "operating_system_shutdown")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[-2]: line.split()[-1] for line in result.stdout.splitlines()[1:7]}
    assert rows["guest_services"] == rows["operating_system_shutdown"] == "off", result.stdout
    assert rows["heartbeat"] == "on"
    refused = api.post(f"/vms/{VM}/integration/exec", json={"argv": ["/bin/true"]})
    assert refused.status_code == 409
    assert "--enable guest_services" in refused.json()["error"]["message"]
    bad = cli(service, "vm", "integration", VM, "--enable", "telepathy")
    assert bad.returncode == 2 and "allowed: operating_system_shutdown" in bad.stderr
    job = act(api, VM, "shutdown", timeout_s=60)
    assert job["result"]["method"] == "ACPI power button"
    cli(service, "vm", "integration", VM, "--enable", "guest_services",
        "--enable", "operating_system_shutdown")


def test_heartbeat_turns_lost_when_the_agent_stops(
    running: tuple[Service, httpx.Client, Console],
) -> None:
    service, api, _ = running
    if api.get(f"/vms/{VM}").json()["state"] != "Running":
        act(api, VM, "start")
    wait_for(api, lambda v: v["heartbeat"] == "OK", "heartbeat OK")
    guest(api, "/bin/sh", "-c", "(sleep 1; killall qemu-ga) >/dev/null 2>&1 &")
    wait_for(api, lambda v: v["heartbeat"] == "Lost Communication", "lost heartbeat")
    assert "Lost Communication" in cli(service, "vm", "list").stdout
    act(api, VM, "stop")
    assert api.get(f"/vms/{VM}").json()["heartbeat"] is None
