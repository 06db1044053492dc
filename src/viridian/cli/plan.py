"""``viridian plan WORKLOAD.yaml [--json] [--report out.html]``: the capacity planner.

Runs locally (no service needed). Reads the input file, sizes every candidate host
shape (:mod:`viridian.planner`), prints the tables and the recommendation (or the JSON)
and optionally writes the HTML report. Bad input exits with code 2 through the root
group's error boundary; exit code 0 even when no candidate fits (the output says so).
"""

from __future__ import annotations

from pathlib import Path

import click

from viridian.cli.output import emit_json
from viridian.errors import BadRequest, HostError
from viridian.planner import format_plan, load_plan, plan, plan_to_dict, render_report

__all__ = ["plan_command"]


@click.command("plan")
@click.argument("workload_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write a self-contained HTML report (charts inline) to this file.",
)
def plan_command(workload_file: Path, as_json: bool, report: Path | None) -> None:
    """Size hosts for the workloads in WORKLOAD_FILE (YAML; see docs/planner-example.yaml):
    hosts needed with N+1 failover, memory, VP:LP, CPU, drives and cost per candidate."""
    result = plan(load_plan(_read(workload_file), str(workload_file)))
    if report is not None:
        _write(report, render_report(result))
    if as_json:
        emit_json(plan_to_dict(result))
    else:
        click.echo(format_plan(result))
        if report is not None:
            click.echo(f"report written to {report}")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise BadRequest(
            f"{path}: not UTF-8 text (byte {err.start}); expected a YAML file"
        ) from err
    except OSError as err:
        raise HostError(f"cannot read {path}: {err.strerror}") from err


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise HostError(f"cannot write the report to {path}: {err.strerror}") from err
