"""``viridian host show|shutdown``: the host as the service sees it."""

from __future__ import annotations

import click

from viridian.cli.client import job_outcome, open_client, wait_for_job
from viridian.cli.output import JobProgress, emit_json, format_host, vm_state_line

__all__ = ["host_group"]

json_option = click.option("--json", "as_json", is_flag=True, help="Print the API object.")


@click.group("host")
def host_group() -> None:
    """The virtualization host."""


@host_group.command("show")
@json_option
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """Show the host's processors, memory and what the VMs use of them."""
    host = open_client(ctx).get("/host")
    if as_json:
        emit_json(host)
    else:
        click.echo(format_host(host))


@host_group.command("shutdown")
@click.pass_context
def shutdown(ctx: click.Context) -> None:
    """Run every VM's automatic stop action (save, turn off or shut down), as at host shutdown.

    Waits for the job, then prints every VM with the state it was left in (``vm1: Saved``).
    """
    client = open_client(ctx)
    job_outcome(wait_for_job(client, client.post("/host/shutdown"), JobProgress()))
    for vm in client.get("/vms")["vms"]:
        click.echo(vm_state_line(vm))


def _cluster_commands() -> None:
    """``host drain|resume`` (the failover cluster's "pause node"), kept in their own module."""
    from viridian.cli.host_cluster import drain, resume

    host_group.add_command(drain)
    host_group.add_command(resume)


_cluster_commands()
