"""``viridian hostgroup new|list|show|remove|add-host|quota``: VMM's tree of hosts (docs/api.md,
"Host groups"): ``All Hosts`` and groups under it; a host is in one group; grants
(``--on hostgroup:PATH``), quotas (``hostgroup quota``) and provisioning (``vm new
--host-group PATH``) use them."""

from __future__ import annotations

from urllib.parse import quote

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json, format_table
from viridian.cli.sizes import SIZE_MB
from viridian.cli.user import JSON_OPTION

__all__ = ["hostgroup_group"]


def _path(group: str) -> str:
    return "/hostgroups/" + quote(group, safe="/")


@click.group("hostgroup")
def hostgroup_group() -> None:
    """Host groups: a tree of hosts ("All Hosts/Prod/Rack1") for placement and delegation."""


@hostgroup_group.command("new")
@click.argument("path")
@JSON_OPTION
@click.pass_context
def new(ctx: click.Context, path: str, as_json: bool) -> None:
    """Make group PATH (e.g. "All Hosts/Prod" or "Prod"); its parent must exist."""
    made = open_client(ctx).post("/hostgroups", {"path": path})
    emit_json(made) if as_json else click.echo(f"host group {made['path']}")


@hostgroup_group.command("list")
@JSON_OPTION
@click.pass_context
def list_groups(ctx: click.Context, as_json: bool) -> None:
    """Every group with its hosts (hosts never placed are in "All Hosts")."""
    answer = open_client(ctx).get("/hostgroups")
    if as_json:
        emit_json(answer)
        return
    click.echo(format_table(("Group", "Hosts"), [
        (g["path"], ", ".join(g["hosts"]) or "-") for g in answer["groups"]]))


@hostgroup_group.command("show")
@click.argument("path")
@click.pass_context
def show(ctx: click.Context, path: str) -> None:
    """Show group PATH (parent, child groups, hosts) as JSON."""
    emit_json(open_client(ctx).get(_path(path)))


@hostgroup_group.command("remove")
@click.argument("path")
@click.pass_context
def remove(ctx: click.Context, path: str) -> None:
    """Remove group PATH (refused while it has groups, hosts or grants)."""
    click.echo(f"removed host group {open_client(ctx).delete(_path(path))['removed']}")


@hostgroup_group.command("add-host")
@click.argument("path")
@click.argument("host")
@click.pass_context
def add_host(ctx: click.Context, path: str, host: str) -> None:
    """Put HOST (this host: localhost or its host name; cluster members by name) into
    group PATH, out of the group it was in."""
    placed = open_client(ctx).request("PUT", f"/hostgroups/hosts/{quote(host, safe='')}",
                                      body={"group": path})
    click.echo(f"{placed['host']} is in {placed['group']}")


@hostgroup_group.command("quota")
@click.argument("path")
@click.argument("user")
@click.option("--vms", type=click.IntRange(0), default=None, help="VMs on the group's hosts.")
@click.option("--memory", type=SIZE_MB, default=None, help="Memory of those VMs, e.g. 4GB.")
@click.option("--processors", type=click.IntRange(0), default=None,
              help="Virtual processors of those VMs.")
@click.option("--disk", type=SIZE_MB, default=None, help="Disk space of those VMs.")
@JSON_OPTION
@click.pass_context
def quota(ctx: click.Context, path: str, user: str, vms: int | None, memory: int | None,
          processors: int | None, disk: int | None, as_json: bool) -> None:
    """Limit what USER's VMs on the hosts under group PATH add up to (no option: the
    group quota is removed)."""
    body = {"group": path, "vms": vms, "memory_mb": memory, "processors": processors,
            "disk_mb": disk}
    answer = open_client(ctx).request("PUT", f"/hostgroups/quotas/{quote(user, safe='')}",
                                      body=body)
    if as_json:
        emit_json(answer)
        return
    for entry in answer["quotas"]:
        limits = ", ".join(f"{k} {v}" for k, v in entry["limits"].items() if v is not None)
        click.echo(f"{user} in {entry['group']}: {limits}")
