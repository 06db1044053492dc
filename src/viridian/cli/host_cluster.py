"""``viridian host drain|resume NAME``: pause a cluster host (Hyper-V's "Pause node") and
bring it back (docs/api.md, "Cluster")."""

from __future__ import annotations

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json

__all__ = ["drain", "resume"]


@click.command("drain")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the API object.")
@click.pass_context
def drain(ctx: click.Context, name: str, as_json: bool) -> None:
    """Pause cluster host NAME: it receives no VMs and its HA VMs move to other hosts
    (turned off there and restarted by the failover path: no live migration yet)."""
    answer = open_client(ctx).post(f"/cluster/hosts/{name}/drain")
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"{answer['host']}: {answer['state']} ({answer['note']})")


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
