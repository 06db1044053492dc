"""``viridian token new|list|revoke``: API tokens (``vtk_…``) of users, optionally with a
role of their own that narrows them (docs/api.md, "Access")."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json, format_table
from viridian.cli.user import JSON_OPTION

__all__ = ["token_group"]


@click.group("token")
def token_group() -> None:
    """API tokens: named, revocable, shown once."""


@token_group.command("new")
@click.option("--user", default=None, help="Whose token (default: yourself).")
@click.option("--name", default="default", show_default=True, help="Its name (per user).")
@click.option("--role", default=None, help="Narrow the token to this role's operations.")
@JSON_OPTION
@click.pass_context
def new(ctx: click.Context, user: str | None, name: str, role: str | None,
        as_json: bool) -> None:
    """Make an API token; its secret is printed only now."""
    body: dict[str, Any] = {"name": name}
    body.update({k: v for k, v in (("user", user), ("role", role)) if v is not None})
    answer = open_client(ctx).post("/access/tokens", body)
    if as_json:
        emit_json(answer)
        return
    click.echo(answer["secret"])
    click.echo(f"token {answer['id']} ({answer['name']}) of {answer['user']}: the secret "
               "above is shown only now", err=True)


@token_group.command("list")
@click.option("--user", default=None, help="Only this user's tokens.")
@JSON_OPTION
@click.pass_context
def list_tokens(ctx: click.Context, user: str | None, as_json: bool) -> None:
    """List tokens (yours; everyone's with access.manage)."""
    tokens = open_client(ctx).get("/access/tokens", {"user": user} if user else None)["tokens"]
    if as_json:
        emit_json(tokens)
        return
    click.echo(format_table(("Id", "User", "Name", "Role", "State"), [
        (t["id"], t["user"], t["name"], t["role"] or "-",
         "revoked" if t["revoked"] else "active") for t in tokens]))


@token_group.command("revoke")
@click.argument("token_id", metavar="ID")
@JSON_OPTION
@click.pass_context
def revoke(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Revoke token ID (see 'viridian token list')."""
    answer = open_client(ctx).delete(f"/access/tokens/{quote(token_id, safe='')}")
    emit_json(answer) if as_json else click.echo(f"revoked token {token_id}")
