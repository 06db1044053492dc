"""``viridian role list|show|new|remove``: named sets of operations (docs/api.md,
"Access"; the operations are listed by ``viridian role show Administrator``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json, format_table
from viridian.cli.user import JSON_OPTION

__all__ = ["role_group"]


def _show(role: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(role)
        return
    kind = "built-in" if role["builtin"] else "custom"
    click.echo(f"{role['name']} ({kind}): {role['description'] or '-'}")
    for operation in role["operations"]:
        click.echo(f"  {operation}")


@click.group("role")
def role_group() -> None:
    """Roles: Administrator, Operator, Viewer, VM User and your own."""


@role_group.command("list")
@JSON_OPTION
@click.pass_context
def list_roles(ctx: click.Context, as_json: bool) -> None:
    """List roles with how many operations each has."""
    roles = open_client(ctx).get("/access/roles")["roles"]
    if as_json:
        emit_json(roles)
        return
    click.echo(format_table(("Name", "Kind", "Operations", "Description"), [
        (r["name"], "built-in" if r["builtin"] else "custom", len(r["operations"]),
         r["description"] or "-") for r in roles]))


@role_group.command("show")
@click.argument("name")
@JSON_OPTION
@click.pass_context
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show role NAME's operations."""
    _show(open_client(ctx).get(f"/access/roles/{quote(name, safe='')}"), as_json)


@role_group.command("new")
@click.argument("name")
@click.option("--operations", required=True, metavar="OP,OP…",
              help="Operations (vm.start), areas (vm.*) or * — comma separated.")
@click.option("--description", default="", help="What the role is for.")
@JSON_OPTION
@click.pass_context
def new(ctx: click.Context, name: str, operations: str, description: str,
        as_json: bool) -> None:
    """Make role NAME from --operations."""
    ops = [op.strip() for op in operations.split(",") if op.strip()]
    _show(open_client(ctx).post("/access/roles", {"name": name, "operations": ops,
                                                  "description": description}), as_json)


@role_group.command("remove")
@click.argument("name")
@JSON_OPTION
@click.pass_context
def remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Remove custom role NAME and its grants."""
    answer = open_client(ctx).delete(f"/access/roles/{quote(name, safe='')}")
    emit_json(answer) if as_json else click.echo(f"removed role {name}")
