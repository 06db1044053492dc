from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from viridian.counters.prometheus import exposition
from viridian.counters.samples import (
    BlockStat,
    CpuTimes,
    DiskStat,
    HostSample,
    NicStat,
    Snapshot,
    VMSample,
)


def test_exposition_parses_with_the_official_parser_and_escapes_labels() -> None:
    host = HostSample(1.0, CpuTimes(5 * 10**9, 10**9), 2, 2048 * 1024, 1024 * 1024,
                      {"vda": DiskStat(1, 8, 1500, 2, 16, 2500, 0, 3000)})
    odd = 'we"ird\\name\nvm'
    vms = (VMSample("1", odd, 2, 256, 77, (2 * 10**9, 10**9), 4 * 10**9, 1000,
                    {"ide0-0": BlockStat(512, 1024, 1, 2, 10**6, 2 * 10**6)},
                    {"nic0": NicStat(100, 200, 1, 2)}),
           VMSample("2", "off", 1, 128, None))
    families = {f.name: f for f in text_string_to_metric_families(
        exposition(Snapshot(0.0, host, vms)))}
    vcpu = families["viridian_vm_vcpu_seconds"]
    assert vcpu.type == "counter"
    assert {(s.labels["vm"], s.labels["vcpu"], s.value) for s in vcpu.samples} == {
        (odd, "0", 2.0), (odd, "1", 1.0)}
    up = {s.labels["vm"]: s.value for s in families["viridian_vm_up"].samples}
    assert up == {odd: 1.0, "off": 0.0}
    assert families["viridian_physical_disk_write_time_seconds"].samples[0].value == 2.5
    assert families["viridian_host_memory_available_bytes"].samples[0].value == 2**30
    assert families["viridian_vm_network_receive_bytes"].samples[0].value == 100
