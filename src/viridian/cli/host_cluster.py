"""``viridian host drain|resume NAME``: pause a cluster host (Hyper-V's "Pause node") and
bring it back (docs/api.md, "Cluster")."""

from __future__ import annotations

from typing import Any

import click

from viridian.cli.client import job_outcome, open_client, wait_for_job
from viridian.cli.output import JobProgress, emit_json

__all__ = ["drain", "resume"]


@click.command("drain")
@click.argument("name")
@click.option("--no-wait", is_flag=True,
              help="Do not wait for this host's drain job (then: viridian job wait ID).")
@click.option("--json", "as_json", is_flag=True, help="Print the API object.")
@click.pass_context
def drain(ctx: click.Context, name: str, no_wait: bool, as_json: bool) -> None:
    """Pause cluster host NAME: it receives no VMs and its HA VMs move to other hosts by
    live (or quick) migration; what cannot move is turned off for failover."""
    client = open_client(ctx)
    answer = client.post(f"/cluster/hosts/{name}/drain")
    job = answer.get("job")
    if job is not None and not no_wait:
        answer["job"] = job_outcome(wait_for_job(client, job, JobProgress()))
    if as_json:
        emit_json(answer)
        return
    click.echo(f"{answer['host']}: {answer['state']} ({answer['note']})")
    if job is not None and not no_wait:
        click.echo(_drained(answer["job"]["result"]))
    elif job is not None:
        click.echo(f"drain job {job['id']}")


def _drained(result: dict[str, Any]) -> str:
    lines = [f"moved {m['vm']} to {m['to']} ({m['mode']})" for m in result["moved"]]
    lines += [f"turned {o['vm']} off for failover: {o['why']}" for o in result["turned_off"]]
    return "\n".join(lines) or "no HA VM ran here"


@click.command("resume")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the API object.")
@click.pass_context
def resume(ctx: click.Context, name: str, as_json: bool) -> None:
    """Resume a paused cluster host: it receives VMs again."""
    answer = open_client(ctx).post(f"/cluster/hosts/{name}/resume")
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"{answer['host']}: {answer['state']}")
