"""Counters on real guests (TCG): a busy and an idle VP, a guest writing to a disk, a guest
filling its memory; /metrics, history, metering and the CLI on the same running service."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from tests.qemu_processes import end_qemu_under
from tests.service.harness import (
    Console,
    Service,
    act,
    kept_for_reading,
    turn_off_everything,
)
from viridian.cli.main import cli

pytestmark = [pytest.mark.guest, pytest.mark.xdist_group("counters-guests")]

VP = r"\Hyper-V Hypervisor Virtual Processor({})\% Total Run Time"
AVAILABLE = r"\Memory\Available MBytes"
DATA_SECTORS = 131072  # the 64 MiB data disk, as /sys/block/*/size shows it
WRITER_SCRIPT = f"""
for b in /sys/block/sd* /sys/block/vd*; do
  [ "$(cat $b/size)" = {DATA_SECTORS} ] && d=/dev/${{b##*/}}
done
echo data=$d
mkdir -p /t && mount -t tmpfs -o size=1700m tmpfs /t
dd if=/dev/zero of=/t/fill bs=1M count=1536 2>/dev/null && echo touched
while :; do dd if=/dev/zero of=$d bs=64k count=64 conv=fsync 2>/dev/null; sleep 1; done
"""


@pytest.fixture(scope="module")
def guests(guest_iso: Path) -> Iterator[tuple[Service, httpx.Client]]:
    from viridian.guestkit import make_config_disk

    data_dir = Path(tempfile.mkdtemp(prefix="vir-ctr-", dir="/tmp"))
    service = Service(data_dir, {"VIRIDIAN_COUNTER_INTERVAL_S": "1"})
    api: httpx.Client | None = None
    try:
        service.start()  # inside: a service that starts but never answers is stopped too
        api = service.client()
        busy = make_config_disk(data_dir / "busy.img", "echo spinning\nwhile :; do :; done\n")
        writer = make_config_disk(data_dir / "writer.img", WRITER_SCRIPT)
        data = data_dir / "data.raw"
        with open(data, "wb") as f:
            f.truncate(DATA_SECTORS * 512)
        for name, mem, cfg in (("idle", 256, None), ("busy", 256, busy), ("writer", 2048, writer)):
            body: dict[str, Any] = {"name": name, "memory_mb": mem, "processors": 1,
                                    "dvd": str(guest_iso)}
            if cfg:
                body["vhd"] = str(cfg)
            if name == "idle":  # its agent reports the adapter's counters
                body["settings"] = {"network_adapters": [{"kind": "synthetic",
                                                          "switch": "user"}]}
            if name == "writer":
                body["settings"] = {"scsi": [{"controller": 0, "disks": [
                    {"location": 0, "path": str(data), "format": "raw"}]}]}
            assert api.post("/vms", json=body).status_code == 201
        for name in ("idle", "busy"):
            act(api, name, "start")
        _console(service, api, "busy").wait_for(b"VIRIDIAN-GUEST CFG spinning", timeout=120)
        _console(service, api, "idle").wait_for(b"VIRIDIAN-GUEST READY", timeout=120)
        yield service, api
    finally:
        try:
            if api is not None:
                turn_off_everything(api)
        finally:
            if api is not None:
                api.close()
            service.stop()
            end_qemu_under(data_dir)  # a guest left running if turning them off failed
            if not kept_for_reading():  # kept to read the service's log
                shutil.rmtree(data_dir, ignore_errors=True)


def _console(service: Service, api: httpx.Client, name: str) -> Console:
    return Console(service.data_dir, api.get(f"/vms/{name}").json()["id"])


def _sample(api: httpx.Client, *paths: str, interval: float = 3.0) -> dict[str, float]:
    response = api.post("/counters/sample", json={"paths": list(paths), "interval_s": interval})
    assert response.status_code == 200, response.text
    return dict(response.json()["values"])


def _sample_every(api: httpx.Client, paths: list[str]) -> dict[str, float]:
    """A 1 s sample of ``paths``, taken again until every path has a value: on a loaded
    host the guest agent may miss its 0.5 s answer time, and is asked again only after
    its back-off (``viridian.counters.collect``), so an adapter's counters can be
    missing from one sample."""
    deadline = time.monotonic() + 90
    while True:
        response = api.post("/counters/sample", json={"paths": paths, "interval_s": 1})
        if response.status_code == 200:
            return dict(response.json()["values"])
        assert time.monotonic() < deadline and "Network Adapter" in response.text, \
            response.text
        time.sleep(2)


def test_busy_guest_drives_its_vp_run_time_and_idle_one_stays_low(guests) -> None:  # type: ignore[no-untyped-def]
    _, api = guests
    time.sleep(3)  # let the idle guest settle after boot
    values = _sample(api, VP.format("busy:*"), VP.format("idle:*"), interval=4)
    busy, idle = values[VP.format("busy:Hv VP 0")], values[VP.format("idle:Hv VP 0")]
    # Absolute figures depend on how many other guests share the host's 2 cores.
    assert busy >= 20, values
    assert idle <= 15, values
    assert busy >= 4 * idle, values


def test_available_memory_drops_when_a_guest_fills_its_memory(guests) -> None:  # type: ignore[no-untyped-def]
    service, api = guests
    before = _sample(api, AVAILABLE, interval=0.5)[AVAILABLE]
    act(api, "writer", "start")
    _console(service, api, "writer").wait_for(b"VIRIDIAN-GUEST CFG touched", timeout=180)
    after = _sample(api, AVAILABLE, r"\Hyper-V Dynamic Memory VM(writer)\Physical Memory",
                    interval=0.5)
    assert after[r"\Hyper-V Dynamic Memory VM(writer)\Physical Memory"] == 2048
    assert before - after[AVAILABLE] >= 1000, (before, after)


def test_disk_counters_move_when_a_guest_writes(guests) -> None:  # type: ignore[no-untyped-def]
    service, api = guests
    if api.get("/vms/writer").json()["state"] != "Running":
        act(api, "writer", "start")
    _console(service, api, "writer").wait_for(b"VIRIDIAN-GUEST CFG data=/dev/", timeout=180)
    path = r"\Hyper-V Virtual Storage Device(writer:scsi0-0)\Write Bytes/sec"
    deadline = time.monotonic() + 60
    while (values := _sample(api, r"\Hyper-V Virtual Storage Device(writer:*)\*"))[path] == 0:
        assert time.monotonic() < deadline, values
    assert values[r"\Hyper-V Virtual Storage Device(writer:scsi0-0)\Write Operations/Sec"] > 0
    metrics = _metrics(service)
    written = {s.labels["disk"]: s.value for s in
               metrics["viridian_vm_disk_written_bytes"].samples if s.labels["vm"] == "writer"}
    assert written["scsi0-0"] >= 64 * 1024, written


def _metrics(service: Service) -> dict[str, Any]:
    response = httpx.get(service.url + "/metrics",
                         headers={"Authorization": f"Bearer {service.token}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def test_metrics_parse_and_need_the_token(guests) -> None:  # type: ignore[no-untyped-def]
    service, _ = guests
    assert httpx.get(service.url + "/metrics").status_code == 401
    families = _metrics(service)
    vcpu = {s.labels["vm"]: s.value for s in families["viridian_vm_vcpu_seconds"].samples}
    assert vcpu["busy"] > vcpu["idle"]
    assert families["viridian_vm_vcpu_seconds"].type == "counter"
    assert families["viridian_host_memory_available_bytes"].samples[0].value > 0


def test_every_listed_counter_is_sampleable_and_history_keeps_them(guests) -> None:  # type: ignore[no-untyped-def]
    service, api = guests
    nic = r"\Hyper-V Virtual Network Adapter(idle:nic0)\Packets Sent/sec"
    deadline = time.monotonic() + 60  # the agent may have been asked before it started
    while nic not in (listed := api.get("/counters").json()["paths"]):
        assert time.monotonic() < deadline, listed
        time.sleep(1)
    assert VP.format("busy:Hv VP 0") in listed
    assert r"\PhysicalDisk(_Total)\% Idle Time" in listed
    assert set(_sample_every(api, listed)) == set(listed)
    history = api.get("/counters/history", params={"path": VP.format("busy:*")}).json()
    assert history["interval_s"] == 1 and history["capacity"] >= 3600
    assert history["samples"] and all(VP.format("busy:Hv VP 0") in s["values"]
                                      for s in history["samples"][-3:])
    env = {"VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    runner = CliRunner()
    shown = runner.invoke(cli, ["counters", "list", "--vm", "busy"], env=env)
    assert shown.exit_code == 0 and VP.format("busy:Hv VP 0") in shown.output.splitlines()
    csv_out = runner.invoke(cli, ["counters", VP.format("*"), "--sample-interval", "0.5",
                                  "--max-samples", "2", "--csv"], env=env)
    lines = csv_out.output.splitlines()
    assert csv_out.exit_code == 0, csv_out.output
    assert lines[0].split(",")[0] == "(PDH-CSV 4.0)" and len(lines) == 3, csv_out.output
    bad = runner.invoke(cli, ["counters", r"\Memory\Nothing"], env=env)
    assert bad.exit_code == 3 and "no counter matches" in bad.output


NIC = r"\Hyper-V Virtual Network Adapter(idle:nic0)\{}"
# In the background: DHCP on QEMU's user-mode network (answers come back), then pings of
# 1000 bytes to its gateway for about 20 s.
TRAFFIC = ("(udhcpc -i eth0 -n -q -t 5; "
           "ping -c 100 -i 0.2 -s 1000 10.0.2.2) >/dev/null 2>&1 </dev/null &")


def _nic_totals(service: Service) -> dict[str, float]:
    families = _metrics(service)
    totals = {}
    for name in ("receive_bytes", "transmit_bytes", "receive_packets", "transmit_packets"):
        samples = families[f"viridian_vm_network_{name}"].samples
        totals[name] = sum(s.value for s in samples
                           if s.labels["vm"] == "idle" and s.labels["adapter"] == "nic0")
    return totals


def test_nic_counters_move_when_the_guest_sends_traffic(guests) -> None:  # type: ignore[no-untyped-def]
    service, api = guests
    deadline = time.monotonic() + 60  # the agent reports the adapter once it answers
    while NIC.format("Bytes Sent/sec") not in api.get("/counters").json()["paths"]:
        assert time.monotonic() < deadline, "the guest agent never reported nic0"
        time.sleep(1)
    before = _nic_totals(service)
    started = api.post("/vms/idle/integration/exec",
                       json={"argv": ["sh", "-c", TRAFFIC], "timeout_s": 30})
    assert started.status_code == 200 and started.json()["exit_code"] == 0, started.text
    deadline = time.monotonic() + 40
    while (rates := _sample(api, NIC.format("*"), interval=2))[NIC.format("Packets Sent/sec")] == 0:
        assert time.monotonic() < deadline, rates
    assert rates[NIC.format("Bytes Sent/sec")] >= 1000, rates
    deadline = time.monotonic() + 30  # /metrics shows the last background sample (1 s)
    while True:
        after = _nic_totals(service)
        moved = {k: after[k] - before[k] for k in after}
        if moved["transmit_bytes"] >= 10_000 and moved["receive_packets"] > 0:
            break
        assert time.monotonic() < deadline, moved
        time.sleep(1)
    assert moved["transmit_packets"] >= 10 and moved["receive_bytes"] > 0, moved
    assert api.get("/vms/idle/measure").json()["network_outbound_bytes"] > 0


def test_measure_vm_accumulates_and_its_reset_survives_a_service_restart(guests) -> None:  # type: ignore[no-untyped-def]
    service, api = guests
    env = {"VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    runner = CliRunner()
    time.sleep(2)
    measured = json.loads(runner.invoke(cli, ["vm", "measure", "busy", "--json"], env=env).output)
    assert measured["avg_cpu_pct"] >= 30 and measured["running_s"] >= 2, measured
    assert measured["avg_memory_mb"] == measured["max_memory_mb"] == 256
    human = runner.invoke(cli, ["vm", "measure", "busy", "--reset"], env=env)
    assert human.exit_code == 0 and "AvgCPU(MHz)" in human.output
    reset_at = api.get("/vms/busy/measure").json()["reset_at"]
    assert reset_at > measured["reset_at"]
    service.stop()
    service.start()
    api.headers["Authorization"] = f"Bearer {service.token}"
    assert api.get("/vms/busy/measure").json()["reset_at"] == reset_at
