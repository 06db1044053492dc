"""``viridian realm add ldap|list|remove``: where users' passwords are checked
(docs/api.md, "Access"); ``local`` and ``pam`` are built in."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json, format_table
from viridian.cli.user import JSON_OPTION, read_secret

__all__ = ["realm_group"]


@click.group("realm")
def realm_group() -> None:
    """Realms: local and pam (built in) and LDAP/AD directories."""


@realm_group.command("add")
@click.argument("kind", type=click.Choice(["ldap"]))
@click.argument("name")
@click.option("--url", "ldap_url", required=True,
              help="ldap://HOST[:PORT] or ldaps://HOST[:PORT].")
@click.option("--base-dn", required=True, help="Where users and groups are searched.")
@click.option("--bind-dn", default=None,
              help="DN the service binds as to search (default: anonymous).")
@click.option("--bind-password-stdin", is_flag=True,
              help="Read the bind DN's password from the first line of standard input.")
@click.option("--user-filter", default=None,
              help="Finds a user; {user} is replaced. Default (uid={user}).")
@click.option("--group-filter", default=None,
              help="Finds a user's groups; {dn} and {user} are replaced.")
@click.option("--group-attr", default=None, help="The group's name attribute (default cn).")
@click.option("--starttls", is_flag=True, help="Upgrade ldap:// with StartTLS (RFC 4513).")
@click.option("--ca-file", default=None, help="CA certificate to verify the server with.")
@JSON_OPTION
@click.pass_context
def add(ctx: click.Context, kind: str, name: str, ldap_url: str, base_dn: str,
        bind_dn: str | None, bind_password_stdin: bool, user_filter: str | None,
        group_filter: str | None, group_attr: str | None, starttls: bool,
        ca_file: str | None, as_json: bool) -> None:
    """Add (or replace) realm NAME of KIND ldap."""
    body: dict[str, Any] = {"name": name, "kind": kind, "url": ldap_url, "base_dn": base_dn,
                            "starttls": starttls}
    body.update({k: v for k, v in (("bind_dn", bind_dn), ("user_filter", user_filter),
                                   ("group_filter", group_filter), ("group_attr", group_attr),
                                   ("ca_file", ca_file)) if v is not None})
    if bind_password_stdin:
        body["bind_password"] = read_secret("bind password")
    answer = open_client(ctx).post("/access/realms", body)
    emit_json(answer) if as_json else click.echo(f"realm {name} ({kind}) at {answer['url']}")


@realm_group.command("list")
@JSON_OPTION
@click.pass_context
def list_realms(ctx: click.Context, as_json: bool) -> None:
    """List realms."""
    realms = open_client(ctx).get("/access/realms")["realms"]
    if as_json:
        emit_json(realms)
        return
    click.echo(format_table(("Name", "Kind", "URL", "Base DN"), [
        (r["name"], r["kind"], r.get("url") or "-", r.get("base_dn") or "-") for r in realms]))


@realm_group.command("remove")
@click.argument("name")
@JSON_OPTION
@click.pass_context
def remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Remove LDAP realm NAME (refused while users of it exist)."""
    answer = open_client(ctx).delete(f"/access/realms/{quote(name, safe='')}")
    emit_json(answer) if as_json else click.echo(f"removed realm {name}")
