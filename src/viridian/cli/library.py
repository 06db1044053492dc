"""``viridian library list|show|add|remove|download``: libraries of ISOs, disks,
templates and cloud-init snippets (docs/api.md, "Library"). Uploads go through the API
(``POST /library/{name}/uploads``, resumable ``PATCH``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json, format_table

__all__ = ["library_group"]


def _path(name: str) -> str:
    return f"/library/{quote(name, safe='')}"


def _uses(item: dict[str, Any]) -> str:
    return "; ".join(item["uses"]) or "-"


@click.group("library")
def library_group() -> None:
    """Libraries: storage paths holding ISOs, disks, templates and cloud-init snippets."""


@library_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.pass_context
def list_libraries(ctx: click.Context, as_json: bool) -> None:
    """List the registered libraries with their item count and bytes."""
    libraries = open_client(ctx).get("/library")["libraries"]
    if as_json:
        emit_json(libraries)
        return
    click.echo(format_table(("Name", "Path", "Items", "Bytes"),
                            [(lib["name"], lib["path"], lib["items"], lib["bytes"])
                             for lib in libraries]))


@library_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.pass_context
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show library NAME's items: kind, format, size, SHA-256 and who uses them."""
    library = open_client(ctx).get(_path(name))
    if as_json:
        emit_json(library)
        return
    click.echo(f"{library['name']}: {library['path']}")
    click.echo(format_table(("Item", "Kind", "Format", "Size", "SHA-256", "Used by"),
                            [(i["name"], i["kind"], i["format"], i["size"],
                              i["sha256"][:16], _uses(i)) for i in library["items"]]))


@library_group.command("add")
@click.argument("name")
@click.argument("folder", type=click.Path(file_okay=False))
@click.pass_context
def add(ctx: click.Context, name: str, folder: str) -> None:
    """Register the existing FOLDER (on the service's host) as library NAME."""
    added = open_client(ctx).post("/library", {"name": name, "path": str(Path(folder).absolute())})
    click.echo(f"library {added['name']}: {added['path']}")


@library_group.command("remove")
@click.argument("name")
@click.pass_context
def remove(ctx: click.Context, name: str) -> None:
    """Unregister library NAME; its files stay where they are."""
    removed = open_client(ctx).delete(_path(name))
    click.echo(f"removed library {removed['removed']} (files kept in {removed['path']})")


@library_group.command("download")
@click.argument("name")
@click.argument("item")
@click.argument("target", type=click.Path(dir_okay=False))
@click.pass_context
def download(ctx: click.Context, name: str, item: str, target: str) -> None:
    """Copy ITEM of library NAME to the local file TARGET."""
    data = open_client(ctx).get_bytes(f"{_path(name)}/content/{quote(item)}")
    Path(target).write_bytes(data)
    click.echo(f"{target}: {len(data)} bytes")
