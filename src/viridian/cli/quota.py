"""``viridian quota set|show USER``: what a self-service user may create — VMs, memory,
processors, disk space (docs/api.md, "Access")."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json
from viridian.cli.sizes import SIZE_MB, format_size
from viridian.cli.user import JSON_OPTION

__all__ = ["quota_group"]

MB = 1024 * 1024


def _show(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(answer)
        return
    used = answer.get("used") or {}
    for key, label in (("vms", "VMs"), ("memory_mb", "Memory"), ("processors", "Processors"),
                       ("disk_mb", "Disk")):
        limit, now = answer["limits"].get(key), used.get(key)
        sized = key.endswith("_mb")
        limit_text = "no limit" if limit is None else (
            format_size(limit * MB) if sized else str(limit))
        used_text = "" if now is None else (
            f"{format_size(now * MB) if sized else now} used of ")
        click.echo(f"{label + ':':<12}{used_text}{limit_text}")


@click.group("quota")
def quota_group() -> None:
    """Self-service quotas: what a user may create and own."""


@quota_group.command("set")
@click.argument("user")
@click.option("--vms", type=click.IntRange(0), default=None, help="VMs the user may own.")
@click.option("--memory", type=SIZE_MB, default=None, help="Memory of all its VMs, e.g. 4GB.")
@click.option("--processors", type=click.IntRange(0), default=None,
              help="Virtual processors of all its VMs.")
@click.option("--disk", type=SIZE_MB, default=None, help="Disk space it may create, e.g. 100GB.")
@JSON_OPTION
@click.pass_context
def set_quota(ctx: click.Context, user: str, vms: int | None, memory: int | None,
              processors: int | None, disk: int | None, as_json: bool) -> None:
    """Set USER's limits (options not given stay as they are)."""
    body = {"vms": vms, "memory_mb": memory, "processors": processors, "disk_mb": disk}
    client = open_client(ctx)
    client.request("PUT", f"/access/quotas/{quote(user, safe='')}", body=body)
    _show(client.get(f"/access/quotas/{quote(user, safe='')}"), as_json)


@quota_group.command("show")
@click.argument("user")
@JSON_OPTION
@click.pass_context
def show(ctx: click.Context, user: str, as_json: bool) -> None:
    """Show USER's limits and what its VMs use."""
    _show(open_client(ctx).get(f"/access/quotas/{quote(user, safe='')}"), as_json)
