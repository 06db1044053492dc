"""``viridian template new|list|show|remove|deploy``: templates in libraries and VMs
provisioned from them (docs/api.md, "Templates and provisioning")."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from viridian.cli.client import job_outcome, open_client, wait_for_job
from viridian.cli.output import emit_json, format_table
from viridian.cli.provision import TemplateOrder, provision, template_options

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
@template_options(template=False)
@click.pass_context
def deploy(ctx: click.Context, template: str, name: str, order: TemplateOrder) -> None:
    """Provision VMs called NAME from TEMPLATE, as 'viridian vm new NAME --template
    TEMPLATE' does (the same code path); prints the placement ratings."""
    provision(ctx, name, order)
