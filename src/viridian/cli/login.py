"""``viridian login URL`` and ``viridian logout URL``: a session for the CLI
(docs/api.md, "Access"). The session token is stored for URL's address only
(:mod:`viridian.cli.credentials`); logging in sends no token at all."""

from __future__ import annotations

import time

import click

from viridian.cli.client import ApiClient, Endpoint
from viridian.cli.credentials import forget_session, normalised_url, store_session
from viridian.cli.options import ClientOptions
from viridian.cli.output import emit_json
from viridian.cli.user import JSON_OPTION, read_secret
from viridian.errors import Unauthorized

__all__ = ["login_command", "logout_command"]


def _client(ctx: click.Context, url: str, token: str | None, origin: str) -> ApiClient:
    """A client of ``url`` sending ``token`` only, with the root's certificate trust
    (``--ca-file`` / pinned fingerprint: docs/api.md, "Transport")."""
    from viridian.cli.trust import Trust

    if "://" not in url:
        url = f"http://{url}"
    options = ctx.find_object(ClientOptions)
    trust = Trust(options.data_dir, options.ca_file, options.trust_fingerprint) \
        if options is not None else None
    return ApiClient(Endpoint(url.rstrip("/"), token, origin), trust)


@click.command("login")
@click.argument("url")
@click.option("--user", default=None, help="Who logs in (default: asked).")
@click.option("--realm", default=None, help="local, pam or an LDAP realm's name (default: the "
              "user's own).")
@click.option("--totp", default=None, metavar="CODE", help="The 6-digit one-time code, when "
              "the user has two-factor login.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@JSON_OPTION
@click.pass_context
def login_command(ctx: click.Context, url: str, user: str | None, realm: str | None,
                  totp: str | None, password_stdin: bool, as_json: bool) -> None:
    """Log in to the service at URL; later commands with --url URL use the session."""
    if user is None:
        user = click.prompt("user", err=True)
    password = read_secret("password") if password_stdin else click.prompt(
        "password", hide_input=True, err=True)
    body = {"user": user, "password": password, "realm": realm, "totp": totp}
    with _client(ctx, url, None, "no token (a login)") as client:
        answer = client.post("/access/login", {k: v for k, v in body.items() if v is not None})
    where = store_session(url, {"token": answer["token"], "expires": answer["expires"],
                                "user": answer["user"], "realm": answer["realm"]})
    if as_json:
        emit_json({k: v for k, v in answer.items() if k != "token"} | {"stored": str(where)})
        return
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(answer["expires"]))
    click.echo(f"logged in to {normalised_url(url)} as {answer['user']} ({answer['realm']}); "
               f"session until {until}, kept in {where}")


@click.command("logout")
@click.argument("url")
@click.pass_context
def logout_command(ctx: click.Context, url: str) -> None:
    """End the session 'viridian login URL' stored, on the service and here."""
    token = forget_session(url)
    if token is None:
        click.echo(f"no session stored for {normalised_url(url)}")
        return
    try:
        with _client(ctx, url, token, "the stored session") as client:
            client.post("/access/logout")
    except Unauthorized:
        click.echo(f"the session for {normalised_url(url)} had ended already; forgotten")
        return
    click.echo(f"logged out of {normalised_url(url)}")
