"""``viridian user add|list|show|remove|password|totp|join|leave``: the service's users
and their local groups (docs/api.md, "Access")."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json, format_table
from viridian.errors import BadRequest

__all__ = ["read_secret", "user_group"]

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")


def read_secret(what: str) -> str:
    """The first line of standard input (``--password-stdin``), without its line end.

    :raises BadRequest: standard input was empty.
    """
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise BadRequest(f"--password-stdin read no {what} from standard input; "
                         "nothing was changed")
    return line


def _user(name: str) -> str:
    return f"/access/users/{quote(name, safe='')}"


def _show(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(answer)
        return
    grants = ", ".join(f"{g['role']} on {g['on']}" for g in answer["grants"]) or "-"
    quota = ", ".join(f"{k}={v}" for k, v in answer["quota"].items() if v is not None) or "-"
    for key, value in (("Name", answer["name"]), ("Realm", answer["realm"]),
                       ("Two-factor", "on" if answer["totp"] else "off"),
                       ("Groups", ", ".join(answer["groups"]) or "-"),
                       ("Realm groups", ", ".join(answer["realm_groups"]) or "-"),
                       ("Grants", grants), ("Quota", quota)):
        click.echo(f"{key + ':':<14}{value}")


@click.group("user")
def user_group() -> None:
    """Users who may log in (local, pam or an LDAP realm) and their groups."""


@user_group.command("add")
@click.argument("name")
@click.option("--realm", default="local", show_default=True,
              help="local, pam, or the name of an LDAP realm ('viridian realm list').")
@click.option("--password-stdin", is_flag=True,
              help="Read the password (local users) from the first line of standard input.")
@JSON_OPTION
@click.pass_context
def add(ctx: click.Context, name: str, realm: str, password_stdin: bool, as_json: bool) -> None:
    """Add user NAME (a local one needs --password-stdin)."""
    body: dict[str, Any] = {"name": name, "realm": realm}
    if password_stdin:
        body["password"] = read_secret("password")
    _show(open_client(ctx).post("/access/users", body), as_json)


@user_group.command("list")
@JSON_OPTION
@click.pass_context
def list_users(ctx: click.Context, as_json: bool) -> None:
    """List users with their realm, groups and grants."""
    users = open_client(ctx).get("/access/users")["users"]
    if as_json:
        emit_json(users)
        return
    click.echo(format_table(("Name", "Realm", "2FA", "Groups", "Grants"), [
        (u["name"], u["realm"], "on" if u["totp"] else "off",
         ", ".join(sorted({*u["groups"], *u["realm_groups"]})) or "-",
         ", ".join(f"{g['role']}@{g['on']}" for g in u["grants"]) or "-") for u in users]))


@user_group.command("show")
@click.argument("name")
@JSON_OPTION
@click.pass_context
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show user NAME: realm, groups, grants, quota."""
    _show(open_client(ctx).get(_user(name)), as_json)


@user_group.command("remove")
@click.argument("name")
@JSON_OPTION
@click.pass_context
def remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Remove user NAME with its sessions, grants and quota (its tokens are revoked)."""
    answer = open_client(ctx).delete(_user(name))
    emit_json(answer) if as_json else click.echo(f"removed user {name}")


@user_group.command("password")
@click.argument("name")
@JSON_OPTION
@click.pass_context
def password(ctx: click.Context, name: str, as_json: bool) -> None:
    """Set local user NAME's password from the first line of standard input."""
    answer = open_client(ctx).request("PUT", f"{_user(name)}/password",
                                      body={"password": read_secret("password")})
    emit_json(answer) if as_json else click.echo(f"password of {name} changed")


@user_group.command("totp")
@click.argument("name")
@JSON_OPTION
@click.pass_context
def totp(ctx: click.Context, name: str, as_json: bool) -> None:
    """Turn on two-factor login for NAME; prints the secret once (add it to an app)."""
    answer = open_client(ctx).post(f"{_user(name)}/totp")
    if as_json:
        emit_json(answer)
        return
    click.echo(f"secret: {answer['secret']}\nuri:    {answer['uri']}\n"
               "(shown only now; logins of this user need its 6-digit code from now on)")


def _membership(ctx: click.Context, user: str, group: str, join: bool, as_json: bool) -> None:
    path = f"/access/groups/{quote(group, safe='')}/members/{quote(user, safe='')}"
    client = open_client(ctx)
    answer = client.request("PUT", path) if join else client.delete(path)
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"{user} {'joined' if join else 'left'} group {group}")


@user_group.command("join")
@click.argument("name")
@click.argument("group")
@JSON_OPTION
@click.pass_context
def join(ctx: click.Context, name: str, group: str, as_json: bool) -> None:
    """Add user NAME to local group GROUP (grants to @GROUP then reach it)."""
    _membership(ctx, name, group, True, as_json)


@user_group.command("leave")
@click.argument("name")
@click.argument("group")
@JSON_OPTION
@click.pass_context
def leave(ctx: click.Context, name: str, group: str, as_json: bool) -> None:
    """Take user NAME out of local group GROUP."""
    _membership(ctx, name, group, False, as_json)


@user_group.group("storage")
def storage_group() -> None:
    """Storage paths: the folders a user (or @group) without host.manage may name files in."""


@storage_group.command("add")
@click.argument("subject", metavar="USER|@GROUP")
@click.argument("path")
@JSON_OPTION
@click.pass_context
def storage_add(ctx: click.Context, subject: str, path: str, as_json: bool) -> None:
    """Let USER (or @GROUP) use files under folder PATH."""
    answer = open_client(ctx).post("/access/storage-paths", {"to": subject, "path": path})
    emit_json(answer) if as_json else click.echo(f"{answer['to']} may use {answer['path']}")


@storage_group.command("remove")
@click.argument("subject", metavar="USER|@GROUP")
@click.argument("path")
@JSON_OPTION
@click.pass_context
def storage_remove(ctx: click.Context, subject: str, path: str, as_json: bool) -> None:
    """Take storage path PATH from USER (or @GROUP)."""
    answer = open_client(ctx).delete("/access/storage-paths", {"to": subject, "path": path})
    emit_json(answer) if as_json else click.echo(f"{subject} may no longer use {path}")


@storage_group.command("list")
@JSON_OPTION
@click.pass_context
def storage_list(ctx: click.Context, as_json: bool) -> None:
    """List every granted storage path."""
    paths = open_client(ctx).get("/access/storage-paths")["storage_paths"]
    if as_json:
        emit_json(paths)
        return
    click.echo(format_table(("To", "Path"), [(p["to"], p["path"]) for p in paths]))
