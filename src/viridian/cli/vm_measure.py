"""``viridian vm measure NAME [--reset]``: resource metering like Hyper-V's Measure-VM."""

from __future__ import annotations

from typing import Any

import click

from viridian.cli.client import open_client, vm_path
from viridian.cli.output import emit_json

__all__ = ["format_measure", "measure"]

MB = 2**20


def format_measure(m: dict[str, Any]) -> str:
    """Measure-VM's columns, one per line."""
    pairs = [
        ("VMName", m["vm"]), ("MeteringSince", m["reset_at_iso"]),
        ("MeteringDuration", f"{m['metering_duration_s']:.0f} s (running {m['running_s']:.0f} s)"),
        ("AvgCPU(MHz)", f"{m['avg_cpu_mhz']:.0f}"), ("AvgCPU(%)", f"{m['avg_cpu_pct']:.2f}"),
        ("AvgRAM(M)", m["avg_memory_mb"]), ("MinRAM(M)", m["min_memory_mb"]),
        ("MaxRAM(M)", m["max_memory_mb"]),
        ("TotalDisk(M)", f"{m['disk_allocated_bytes'] / MB:.1f}"),
        ("DiskDataRead(M)", f"{m['disk_read_bytes'] / MB:.1f}"),
        ("DiskDataWritten(M)", f"{m['disk_written_bytes'] / MB:.1f}"),
        ("DiskOperations", f"{m['disk_read_operations']} read, "
                           f"{m['disk_write_operations']} written"),
        ("NetworkInbound(M)", f"{m['network_inbound_bytes'] / MB:.2f}"),
        ("NetworkOutbound(M)", f"{m['network_outbound_bytes'] / MB:.2f}"),
    ]
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {'-' if v is None else v}" for k, v in pairs)


@click.command("measure")
@click.argument("name")
@click.option("--reset", is_flag=True, help="Show the measurement, then start metering anew.")
@click.option("--json", "as_json", is_flag=True, help="Print the API object.")
@click.pass_context
def measure(ctx: click.Context, name: str, reset: bool, as_json: bool) -> None:
    """Resource use of a VM since metering was last reset (like Measure-VM)."""
    client = open_client(ctx)
    result = (client.post(vm_path(name, "measure", "reset")) if reset
              else client.get(vm_path(name, "measure")))
    emit_json(result) if as_json else click.echo(format_measure(result))
