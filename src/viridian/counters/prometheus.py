"""Prometheus text exposition (format 0.0.4) of a raw snapshot.

Names follow Prometheus' rules (``prometheus.io/docs/practices/naming``): base units
(seconds, bytes), ``_total`` on counters, no percentages — ``rate()`` of
``viridian_vm_vcpu_seconds_total`` gives what Perfmon's ``% Total Run Time`` shows.
Cumulative values restart from zero when a VM's QEMU process restarts, which
Prometheus' ``rate()`` handles as a counter reset.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from viridian.counters.samples import Snapshot, VMSample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Family:
    """One metric family: its samples as (labels, value)."""

    name: str
    kind: str  # "counter" or "gauge"
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> None:
        self.samples.append((labels, value))


def escape_label(value: str) -> str:
    """Label value escaping: backslash, double quote and line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def render(families: Iterable[Family]) -> str:
    """The exposition text of ``families`` (families without samples are left out)."""
    lines: list[str] = []
    for fam in families:
        if not fam.samples:
            continue
        lines += [f"# HELP {fam.name} {escape_help(fam.help)}", f"# TYPE {fam.name} {fam.kind}"]
        for labels, value in fam.samples:
            text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
            lines.append(f"{fam.name}{{{text}}} {_number(value)}" if text
                         else f"{fam.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def families(snapshot: Snapshot) -> list[Family]:
    """Every viridian metric family for ``snapshot``."""
    host = snapshot.host
    fams = [
        Family("viridian_host_memory_available_bytes", "gauge",
               "Memory available for starting processes (MemAvailable)"),
        Family("viridian_host_memory_bytes", "gauge", "Physical memory of the host"),
        Family("viridian_host_logical_processors", "gauge", "Logical processors of the host"),
        Family("viridian_host_cpu_busy_seconds_total", "counter",
               "CPU time of the whole host not idle, summed over logical processors"),
    ]
    fams[0].add(host.memory_available_kb * 1024)
    fams[1].add(host.memory_total_kb * 1024)
    fams[2].add(host.logical_processors)
    fams[3].add(host.cpu.busy_ns / 1e9)
    fams += _disk_families(snapshot) + _vm_families(snapshot.vms)
    return fams


def _disk_families(snapshot: Snapshot) -> list[Family]:
    read = Family("viridian_physical_disk_read_time_seconds_total", "counter",
                  "Time spent reading, summed over requests (rate = avg. read queue length)")
    write = Family("viridian_physical_disk_write_time_seconds_total", "counter",
                   "Time spent writing, summed over requests (rate = avg. write queue length)")
    busy = Family("viridian_physical_disk_io_time_seconds_total", "counter",
                  "Time with at least one request outstanding (1 - rate = idle fraction)")
    for name, d in sorted(snapshot.host.disks.items()):
        read.add(d.read_ms / 1000, device=name)
        write.add(d.write_ms / 1000, device=name)
        busy.add(d.io_ms / 1000, device=name)
    return [read, write, busy]


VM_FAMILIES = (
    ("viridian_vm_up", "gauge", "1 while the VM has a QEMU process, else 0"),
    ("viridian_vm_memory_assigned_bytes", "gauge", "Memory assigned to the running VM"),
    ("viridian_vm_virtual_processors", "gauge", "Virtual processors of the VM"),
    ("viridian_vm_vcpu_seconds_total", "counter", "CPU time run by each virtual processor"),
    ("viridian_vm_process_cpu_seconds_total", "counter",
     "CPU time of the VM's whole QEMU process (vCPUs and device emulation)"),
    ("viridian_vm_disk_read_bytes_total", "counter", "Bytes read by the guest from a disk"),
    ("viridian_vm_disk_written_bytes_total", "counter", "Bytes written by the guest to a disk"),
    ("viridian_vm_disk_reads_completed_total", "counter", "Read operations completed"),
    ("viridian_vm_disk_writes_completed_total", "counter", "Write operations completed"),
    ("viridian_vm_disk_read_time_seconds_total", "counter", "Total latency of reads"),
    ("viridian_vm_disk_write_time_seconds_total", "counter", "Total latency of writes"),
    ("viridian_vm_network_receive_bytes_total", "counter", "Bytes received by the guest"),
    ("viridian_vm_network_transmit_bytes_total", "counter", "Bytes sent by the guest"),
    ("viridian_vm_network_receive_packets_total", "counter", "Packets received by the guest"),
    ("viridian_vm_network_transmit_packets_total", "counter", "Packets sent by the guest"),
)


def _vm_families(vms: Iterable[VMSample]) -> list[Family]:
    fams = {name: Family(name, kind, text) for name, kind, text in VM_FAMILIES}
    for vm in vms:
        _add_vm(fams, vm)
    return list(fams.values())


def _add_vm(f: dict[str, Family], vm: VMSample) -> None:
    f["viridian_vm_up"].add(1 if vm.running else 0, vm=vm.name)
    f["viridian_vm_virtual_processors"].add(vm.processors, vm=vm.name)
    if not vm.running:
        return
    f["viridian_vm_memory_assigned_bytes"].add(vm.memory_mb * 2**20, vm=vm.name)
    f["viridian_vm_process_cpu_seconds_total"].add(vm.process_ns / 1e9, vm=vm.name)
    for vp, ns in enumerate(vm.vcpu_ns):
        f["viridian_vm_vcpu_seconds_total"].add(ns / 1e9, vm=vm.name, vcpu=str(vp))
    for disk, b in sorted(vm.disks.items()):
        p = "viridian_vm_disk_"
        f[p + "read_bytes_total"].add(b.rd_bytes, vm=vm.name, disk=disk)
        f[p + "written_bytes_total"].add(b.wr_bytes, vm=vm.name, disk=disk)
        f[p + "reads_completed_total"].add(b.rd_operations, vm=vm.name, disk=disk)
        f[p + "writes_completed_total"].add(b.wr_operations, vm=vm.name, disk=disk)
        f[p + "read_time_seconds_total"].add(b.rd_total_time_ns / 1e9, vm=vm.name, disk=disk)
        f[p + "write_time_seconds_total"].add(b.wr_total_time_ns / 1e9, vm=vm.name, disk=disk)
    for nic, n in sorted(vm.nics.items()):
        p = "viridian_vm_network_"
        f[p + "receive_bytes_total"].add(n.rx_bytes, vm=vm.name, adapter=nic)
        f[p + "transmit_bytes_total"].add(n.tx_bytes, vm=vm.name, adapter=nic)
        f[p + "receive_packets_total"].add(n.rx_packets, vm=vm.name, adapter=nic)
        f[p + "transmit_packets_total"].add(n.tx_packets, vm=vm.name, adapter=nic)


def exposition(snapshot: Snapshot) -> str:
    """The whole ``/metrics`` body for ``snapshot``."""
    return render(families(snapshot))
