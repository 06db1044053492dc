"""``viridian job list|show|wait|cancel``: the service's jobs (docs/api.md, "Jobs").

Every long operation is a job; ``--no-wait`` on a command prints the job's id, and these
commands pick it up. ``job wait`` exits like the command would have: 0 when the job
completed, else the exit code of the job's error (4 when it was cancelled).
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import click

from viridian.cli.client import job_outcome, open_client, wait_for_job
from viridian.cli.output import JobProgress, emit_json, format_table, job_label

__all__ = ["job_group", "print_job_id"]

json_option = click.option("--json", "as_json", is_flag=True, help="Print the API object.")
JOB_FIELDS = (
    ("Id", "id"),
    ("Kind", "kind"),
    ("VM", "vm"),
    ("State", "state"),
    ("Progress", "progress"),
    ("Message", "message"),
    ("Created", "created_at"),
    ("Started", "started_at"),
    ("Finished", "finished_at"),
)


def job_path(job_id: str, *rest: str) -> str:
    """API path of a job, quoted so that any id is one path segment."""
    return "/".join(["/jobs", quote(job_id, safe=""), *rest])


def print_job_id(job: dict[str, Any]) -> None:
    """``--no-wait``: the job id on stdout (for scripts); on a terminal, a hint on stderr."""
    click.echo(job["id"])
    if _stderr_is_terminal():
        click.echo(
            f"follow it with: viridian job wait {job['id']}  (or job show / job cancel)",
            err=True,
        )


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def job_state_line(job: dict[str, Any]) -> str:
    """``job-3 (start web): completed``."""
    return f"{job['id']} ({job_label(job)}): {job['state']}"


def format_job(job: dict[str, Any]) -> str:
    """One job, a field per line; its error and result when it has them."""
    lines = [f"{title + ':':<10} {_shown(job.get(key))}" for title, key in JOB_FIELDS]
    error = job.get("error")
    if isinstance(error, dict):
        lines.append(f"{'Error:':<10} {error.get('message', '')}")
    if job.get("result") is not None:
        lines.append(f"{'Result:':<10} {job['result']}")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


@click.group("job")
def job_group() -> None:
    """Jobs: list, show, wait for or cancel them."""


@job_group.command("list")
@json_option
@click.pass_context
def list_jobs(ctx: click.Context, as_json: bool) -> None:
    """List the jobs the service knows, oldest first."""
    answer = open_client(ctx).get("/jobs")
    if as_json:
        emit_json(answer)
        return
    rows = [
        (
            j["id"],
            j.get("kind"),
            j.get("vm") or "-",
            j["state"],
            f"{j.get('progress', 0)}%",
            j.get("created_at") or "-",
        )
        for j in answer["jobs"]
    ]
    click.echo(format_table(("ID", "KIND", "VM", "STATE", "PROGRESS", "CREATED"), rows))


@job_group.command("show")
@click.argument("job_id", metavar="ID")
@json_option
@click.pass_context
def show(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Show the job ID: state, progress, times, error or result."""
    job = open_client(ctx).get(job_path(job_id))
    if as_json:
        emit_json(job)
    else:
        click.echo(format_job(job))


@job_group.command("wait")
@click.argument("job_id", metavar="ID")
@json_option
@click.pass_context
def wait(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Wait for the job ID to end, showing its progress; exit 0 only if it completed."""
    client = open_client(ctx)
    job = wait_for_job(client, client.get(job_path(job_id)), JobProgress())
    if as_json:
        emit_json(job)
    job_outcome(job)
    if not as_json:
        click.echo(job_state_line(job))


@job_group.command("cancel")
@click.argument("job_id", metavar="ID")
@click.pass_context
def cancel(ctx: click.Context, job_id: str) -> None:
    """Cancel the queued job ID and wait until it has ended (a running job cannot be)."""
    client = open_client(ctx)
    job = wait_for_job(client, client.post(job_path(job_id, "cancel")), lambda _job: None)
    click.echo(job_state_line(job))
    if job["state"] != "cancelled":
        job_outcome(job)
