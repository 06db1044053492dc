"""``viridian counters``: sample performance counters like PowerShell's Get-Counter.

``viridian counters list`` names every counter path available now; ``viridian counters
[PATH...]`` takes ``--max-samples`` samples, each over ``--sample-interval`` seconds
(``POST /counters/sample``). Paths are Perfmon's (``\\Object(Instance)\\Counter``), with
``*`` wildcards; quote them in the shell.
"""

from __future__ import annotations

import csv
import datetime
import io
from typing import Any

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json, format_table

__all__ = ["counters_command", "format_samples_csv", "format_samples_table"]


def _stamp(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M:%S")


def format_samples_table(samples: list[dict[str, Any]]) -> str:
    """One row per (sample, counter): Timestamp, Path, Value."""
    rows = [(_stamp(s["time"]), path, f"{value:.3f}")
            for s in samples for path, value in s["values"].items()]
    return format_table(("Timestamp", "Path", "Value"), rows)


def format_samples_csv(samples: list[dict[str, Any]]) -> str:
    """Perfmon's CSV layout (as ``relog -f csv`` writes it): a ``(PDH-CSV 4.0)`` time
    column, then one column per counter path, one row per sample."""
    paths = sorted({p for s in samples for p in s["values"]})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["(PDH-CSV 4.0)", *paths])
    for s in samples:
        stamp = datetime.datetime.fromtimestamp(s["time"]).strftime("%m/%d/%Y %H:%M:%S.%f")
        writer.writerow([stamp[:-3], *(s["values"].get(p, "") for p in paths)])
    return out.getvalue().rstrip("\n")


@click.command("counters")
@click.argument("paths", nargs=-1)
@click.option("--vm", help="Only counters of this VM (name or id).")
@click.option("--sample-interval", type=click.FloatRange(min=0.1, max=60), default=1.0,
              show_default=True, help="Seconds each sample spans.")
@click.option("--max-samples", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many samples to take.")
@click.option("--json", "as_json", is_flag=True, help="Print the samples as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the samples as Perfmon CSV.")
@click.pass_context
def counters_command(ctx: click.Context, paths: tuple[str, ...], vm: str | None,
                     sample_interval: float, max_samples: int, as_json: bool,
                     as_csv: bool) -> None:
    """Sample counters (all when no PATH is given), or name them: 'viridian counters list'.

    \b
    Examples:
      viridian counters list
      viridian counters '\\Memory\\Available MBytes'
      viridian counters '\\Hyper-V Hypervisor Virtual Processor(*)\\% Total Run Time' \\
                        --sample-interval 2 --max-samples 5 --csv
    """
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    client = open_client(ctx)
    if paths == ("list",):
        listed = client.get("/counters", params={"vm": vm} if vm else None)["paths"]
        emit_json(listed) if as_json else click.echo("\n".join(listed))
        return
    body = {"paths": list(paths), "vm": vm, "interval_s": sample_interval}
    samples = []
    for _ in range(max_samples):
        sample = client.request("POST", "/counters/sample", body=body,
                                timeout=sample_interval + 30)
        samples.append(sample)
        if not (as_json or as_csv):
            click.echo(format_samples_table([sample]) + "\n")
    if as_json:
        emit_json(samples)
    elif as_csv:
        click.echo(format_samples_csv(samples))
