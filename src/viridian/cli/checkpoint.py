"""``viridian checkpoint new|list|apply|rename|remove`` (docs/api.md, "Checkpoints")."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from viridian.cli.client import job_outcome, open_client, vm_path, wait_for_job
from viridian.cli.job import print_job_id
from viridian.cli.output import JobProgress, emit_json

__all__ = ["checkpoint_group", "format_tree"]

NOW = "Now"


@click.group("checkpoint")
def checkpoint_group() -> None:
    """Checkpoints (Hyper-V snapshots): take, list, apply, rename and delete them."""


def _cp_path(vm: str, cp: str, *rest: str) -> str:
    return vm_path(vm, "checkpoints", quote(cp, safe=""), *rest)


def _follow(client: Any, job: dict[str, Any], no_wait: bool) -> dict[str, Any] | None:
    if no_wait:
        print_job_id(job)
        return None
    return job_outcome(wait_for_job(client, job, JobProgress()))


@checkpoint_group.command("new")
@click.argument("vm")
@click.argument("name", required=False)
@click.option("--notes", default="", help="Notes kept with the checkpoint.")
@click.option("--no-wait", is_flag=True,
              help="Print the job id instead of waiting (then: viridian job wait ID).")
@click.pass_context
def new(ctx: click.Context, vm: str, name: str | None, notes: str, no_wait: bool) -> None:
    """Take a checkpoint of VM (default name: 'VM - (date - time)')."""
    client = open_client(ctx)
    job = _follow(client, client.post(vm_path(vm, "checkpoints"),
                                      {"name": name, "notes": notes}), no_wait)
    if job:
        cp = job["result"]
        click.echo(f"{vm}: checkpoint '{cp['name']}' taken ({taken_text(cp)})")


def taken_text(cp: dict[str, Any]) -> str:
    """What a checkpoint captured, in words: "production checkpoint; VM Running" for a
    disks-only checkpoint of a running VM, else the captured state ("Running with memory")."""
    if cp.get("production"):
        return f"production checkpoint; VM {cp.get('vm_state', 'Running')}"
    return str(cp["state"]) + (" with memory" if cp["has_memory"] else "")


@checkpoint_group.command("list")
@click.argument("vm")
@click.option("--json", "as_json", is_flag=True, help="Print the API object.")
@click.pass_context
def list_command(ctx: click.Context, vm: str, as_json: bool) -> None:
    """Show VM's checkpoint tree; 'Now' marks where the VM currently is."""
    view = open_client(ctx).get(vm_path(vm, "checkpoints"))
    if as_json:
        emit_json(view)
    else:
        click.echo(format_tree(view))


@checkpoint_group.command("apply")
@click.argument("vm")
@click.argument("name")
@click.option("--checkpoint-first", is_flag=True,
              help="Take a checkpoint of the current state first (else it is discarded).")
@click.option("--no-wait", is_flag=True,
              help="Print the job id instead of waiting (then: viridian job wait ID).")
@click.pass_context
def apply(ctx: click.Context, vm: str, name: str, checkpoint_first: bool, no_wait: bool) -> None:
    """Return VM to checkpoint NAME: its disks, configuration and memory state."""
    client = open_client(ctx)
    job = _follow(client, client.post(_cp_path(vm, name, "apply"),
                                      {"checkpoint_first": checkpoint_first}), no_wait)
    if job:
        result = job["result"]
        if result.get("checkpoint_taken"):
            click.echo(f"{vm}: checkpoint '{result['checkpoint_taken']['name']}' taken first")
        click.echo(f"{vm}: applied '{result['applied']['name']}'; the VM is {result['state']}")


@checkpoint_group.command("rename")
@click.argument("vm")
@click.argument("name")
@click.argument("new_name")
@click.pass_context
def rename(ctx: click.Context, vm: str, name: str, new_name: str) -> None:
    """Rename checkpoint NAME of VM to NEW_NAME."""
    cp = open_client(ctx).patch(_cp_path(vm, name), {"name": new_name})
    click.echo(f"{vm}: checkpoint '{name}' is now '{cp['name']}'")


@checkpoint_group.command("remove")
@click.argument("vm")
@click.argument("name")
@click.option("--subtree", is_flag=True, help="Also delete every checkpoint below it.")
@click.option("--no-wait", is_flag=True,
              help="Print the job id instead of waiting (then: viridian job wait ID).")
@click.pass_context
def remove(ctx: click.Context, vm: str, name: str, subtree: bool, no_wait: bool) -> None:
    """Delete checkpoint NAME (its data is merged into what still needs it)."""
    client = open_client(ctx)
    job = _follow(client, client.delete(_cp_path(vm, name),
                                        params={"subtree": str(subtree).lower()}), no_wait)
    if job:
        removed = ", ".join(f"'{n}'" for n in job["result"]["removed"])
        click.echo(f"{vm}: deleted {removed}")


def format_tree(view: dict[str, Any]) -> str:
    """The tree as Hyper-V Manager draws it, oldest first, Now under its parent."""
    checkpoints = view["checkpoints"]
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    for cp in checkpoints:
        by_parent.setdefault(cp["parent_id"], []).append(cp)
    lines = [f"{view['vm']}: {view['count']} of {view['limit']} checkpoints"]

    def walk(parent: str | None, indent: str) -> None:
        children: list[tuple[str, dict[str, Any] | None]] = [
            (cp["id"], cp) for cp in by_parent.get(parent, [])]
        if view["now_parent_id"] == parent:
            children.append((NOW, None))
        for i, (key, cp) in enumerate(children):
            last = i == len(children) - 1
            branch = "└─ " if last else "├─ "
            if cp is None:
                lines.append(f"{indent}{branch}▶ {NOW}")
                continue
            memory = ", memory" if cp["has_memory"] else ""
            lines.append(f"{indent}{branch}{cp['name']}  [{cp['state']}{memory}; "
                         f"{cp['created_at']}]")
            walk(key, indent + ("   " if last else "│  "))
    walk(None, "")
    return "\n".join(lines)
