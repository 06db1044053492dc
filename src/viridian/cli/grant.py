"""``viridian grant``, ``viridian revoke`` and ``viridian grants``: roles given to users
or @groups on a scope — host, vm:NAME, tag:TAG, template:NAME or hostgroup:PATH
(docs/api.md, "Access")."""

from __future__ import annotations

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json, format_table
from viridian.cli.user import JSON_OPTION

__all__ = ["grant_command", "grants_command", "revoke_command"]

TO = click.option("--to", "subject", required=True, metavar="USER|@GROUP",
                  help="A user, or @GROUP for every member of a group.")
ON = click.option("--on", "scope", default="host", show_default=True,
                  metavar="host|vm:NAME|tag:TAG|template:NAME|hostgroup:PATH",
                  help="Where the role applies (template:NAME, hostgroup:PATH: self-service "
                  "provisioning).")


@click.command("grant")
@click.argument("role")
@TO
@ON
@JSON_OPTION
@click.pass_context
def grant_command(ctx: click.Context, role: str, subject: str, scope: str,
                  as_json: bool) -> None:
    """Give ROLE to USER or @GROUP on a scope."""
    answer = open_client(ctx).post("/access/grants", {"role": role, "to": subject,
                                                      "on": scope})
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"granted {answer['role']} to {answer['to']} on {answer['on']}")


@click.command("revoke")
@click.argument("role")
@TO
@ON
@JSON_OPTION
@click.pass_context
def revoke_command(ctx: click.Context, role: str, subject: str, scope: str,
                   as_json: bool) -> None:
    """Take ROLE from USER or @GROUP on a scope."""
    answer = open_client(ctx).delete("/access/grants", {"role": role, "to": subject,
                                                        "on": scope})
    emit_json(answer) if as_json else click.echo(f"revoked {role} from {subject} on {scope}")


@click.command("grants")
@JSON_OPTION
@click.pass_context
def grants_command(ctx: click.Context, as_json: bool) -> None:
    """List every grant."""
    grants = open_client(ctx).get("/access/grants")["grants"]
    if as_json:
        emit_json(grants)
        return
    click.echo(format_table(("Id", "Role", "To", "On"),
                            [(g["id"], g["role"], g["to"], g["on"]) for g in grants]))
