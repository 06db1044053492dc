"""``viridian template new|list|show|remove|deploy``: templates in libraries and VMs
provisioned from them (docs/api.md, "Templates and provisioning")."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from viridian.cli.client import job_outcome, open_client, wait_for_job
from viridian.cli.output import emit_json, format_table

__all__ = ["template_group"]


def _quiet(_job: dict[str, Any]) -> None:
    pass


@click.group("template")
def template_group() -> None:
    """Templates (a VM's generalised configuration and disks) and VMs made from them."""


@template_group.command("new")
@click.argument("name")
@click.option("--from-vm", "vm", required=True, metavar="VM", help="The VM (Off) to copy.")
@click.option("--library", default=None, help="Library to keep it in (default: default).")
@click.pass_context
def new(ctx: click.Context, name: str, vm: str, library: str | None) -> None:
    """Make the next version of template NAME from VM (which must be Off)."""
    client = open_client(ctx)
    body = {"name": name, "vm": vm, **({"library": library} if library else {})}
    result = job_outcome(wait_for_job(client, client.post("/templates", body), _quiet))["result"]
    click.echo(f"template {result['name']} v{result['version']} in {result['folder']} "
               f"({len(result['disks'])} disk(s); reset: {', '.join(result['generalised'])})")


@template_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.pass_context
def list_templates(ctx: click.Context, as_json: bool) -> None:
    """List templates with their versions and the VMs that use them."""
    templates = open_client(ctx).get("/templates")["templates"]
    if as_json:
        emit_json(templates)
        return
    click.echo(format_table(("Name", "Versions", "Library", "Used by"), [
        (t["name"], ",".join(map(str, t["versions"])), t["latest"]["library"],
         ", ".join(t["used_by"]) or "-") for t in templates]))


@template_group.command("show")
@click.argument("name")
@click.pass_context
def show(ctx: click.Context, name: str) -> None:
    """Show template NAME's versions as JSON."""
    emit_json(open_client(ctx).get(f"/templates/{quote(name, safe='')}"))


@template_group.command("remove")
@click.argument("name")
@click.option("--version", type=int, default=None, help="Only this version.")
@click.pass_context
def remove(ctx: click.Context, name: str, version: int | None) -> None:
    """Remove template NAME (refused while VMs made from it exist)."""
    params = {"version": version} if version else None
    removed = open_client(ctx).delete(f"/templates/{quote(name, safe='')}", params)
    click.echo(f"removed template {removed['removed']} v{removed['versions']}")


@template_group.command("deploy")
@click.argument("template")
@click.argument("name")
@click.option("--count", type=click.IntRange(1, 100), default=1, help="How many VMs.")
@click.option("--full-copy", is_flag=True, help="Copy the disks instead of overlays.")
@click.option("--dry-run", is_flag=True, help="Only show the placement ratings.")
@click.option("--switch", default=None, help="Virtual switch for the network adapters.")
@click.option("--ip", default=None, help="Static address of the first VM (CIDR).")
@click.option("--gateway", default=None)
@click.option("--user", default=None, help="User to create in the guest.")
@click.option("--ssh-key", "ssh_keys", multiple=True, help="Authorized key of --user.")
@click.option("--run", "runcmd", multiple=True, help="Command the guest runs (repeatable).")
@click.pass_context
def deploy(ctx: click.Context, template: str, name: str, count: int, full_copy: bool,
           dry_run: bool, switch: str | None, ip: str | None, gateway: str | None,
           user: str | None, ssh_keys: tuple[str, ...], runcmd: tuple[str, ...]) -> None:
    """Provision COUNT VMs called NAME (NAME-1..N) from TEMPLATE, customised by a
    cloud-init seed; prints the placement ratings."""
    body: dict[str, Any] = {"template": template, "name": name, "count": count,
                            "full_copy": full_copy, "dry_run": dry_run, "ssh_keys": ssh_keys,
                            "runcmd": runcmd}
    body.update({k: v for k, v in (("switch", switch), ("ip", ip), ("gateway", gateway),
                                   ("user", user)) if v})
    client = open_client(ctx)
    answer = client.post("/provision", {**body, "ssh_keys": list(ssh_keys),
                                        "runcmd": list(runcmd)})
    plan = answer if dry_run else job_outcome(wait_for_job(client, answer, _quiet))["result"]
    for rating in plan["ratings"]:
        click.echo(f"{rating['host']}: {'*' * rating['stars'] or '0 stars'} — "
                   + "; ".join(rating["reasons"]))
    if not dry_run:
        click.echo("provisioned: " + ", ".join(plan["vms"]))
