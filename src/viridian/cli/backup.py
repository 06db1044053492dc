"""``viridian backup new|list|show|verify|restore|remove``: backup points of VMs in
folder targets (docs/api.md, "Backup")."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import click

from viridian.backup.pick import parse_time
from viridian.cli.client import job_outcome, open_client, wait_for_job
from viridian.cli.output import JobProgress, emit_json, format_table
from viridian.errors import InvalidSetting

__all__ = ["backup_group"]


def _result(client: Any, job: dict[str, Any]) -> dict[str, Any]:
    result = job_outcome(wait_for_job(client, job, JobProgress()))["result"]
    assert isinstance(result, dict)
    return result


def _path(backup_id: str, *rest: str) -> str:
    return "/".join(["/backups", quote(backup_id, safe=""), *rest])


json_option = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")


@click.group("backup")
def backup_group() -> None:
    """Backup points of VMs (live while they run) in folder targets: take, list, show,
    verify, restore and remove them."""


@backup_group.command("new")
@click.argument("vm", required=False)
@click.option("--all", "every", is_flag=True,
              help="Every VM on the host (Running and Off), one after another; a VM that "
                   "fails does not stop the others (exit 1 naming them).")
@click.option("--to", "target", required=True, type=click.Path(file_okay=False),
              help="An existing folder (a mounted NAS); points go to TARGET/<VM name>/.")
@click.option("--incremental", is_flag=True,
              help="Only what changed since the VM's last point (full when the change "
                   "tracking was lost; the record says why).")
@click.option("--rate-limit", type=click.FloatRange(min=0.01), default=None,
              metavar="MIB_S", help="Write to the target at most this fast (MiB/s).")
@click.option("--with-memory", is_flag=True,
              help="Include the VM's memory state (Running, Paused or Saved VM; with "
                   "--all, of each VM that has one): a restore gives a Saved VM that "
                   "continues where it was.")
@click.option("--keep-daily", type=click.IntRange(0, 10_000), default=0,
              help="Then keep the newest point of each of this many days (with points).")
@click.option("--keep-weekly", type=click.IntRange(0, 10_000), default=0,
              help="... and of each of this many ISO weeks (chains are kept whole).")
@json_option
@click.pass_context
def new(ctx: click.Context, vm: str | None, every: bool, target: str, incremental: bool,
        rate_limit: float | None, with_memory: bool, keep_daily: int, keep_weekly: int,
        as_json: bool) -> None:
    """Take a backup point of VM, or of every VM with --all (application-consistent when
    its guest agent freezes its file systems, crash-consistent otherwise)."""
    if every == (vm is not None):
        raise click.UsageError("give a VM or --all (not both)", ctx)
    client = open_client(ctx)
    body: dict[str, Any] = {"target": os.path.abspath(os.path.expanduser(target)),
                            "incremental": incremental, "keep_daily": keep_daily,
                            "keep_weekly": keep_weekly, **({"all": True} if every else
                                                           {"vm": vm})}
    if rate_limit is not None:
        body["rate_limit_mib_s"] = rate_limit
    if with_memory:
        body["with_memory"] = True
    result = _result(client, client.post("/backups", body))
    if as_json:
        emit_json(result)
    elif every:
        for outcome in result["points"]:
            _echo_outcome(outcome)
    else:
        _echo_point(result)
    if every and result["failed"]:
        click.echo(f"the backup of {len(result['failed'])} VM(s) failed: "
                   f"{', '.join(result['failed'])}", err=True)
        ctx.exit(1)


def _echo_outcome(outcome: dict[str, Any]) -> None:
    if outcome["error"] is not None:
        click.echo(f"{outcome['vm']}: FAILED: {outcome['error']['message']}", err=True)
    else:
        _echo_point(outcome["backup"])
    if outcome.get("memory_skipped"):
        click.echo(f"{outcome['vm']}: without memory: {outcome['memory_skipped']}", err=True)


def _echo_point(record: dict[str, Any]) -> None:
    click.echo(f"backup {record['id']} of {record['vm_name']}: {record['kind']}, "
               f"{record['consistency']}-consistent"
               f"{', with memory' if record.get('memory') else ''}, in {record['folder']}")
    if record["reason"]:
        click.echo(f"note: {record['reason']}", err=True)
    for pruned in record.get("pruned", []):
        click.echo(f"removed backup {pruned} (retention)")


@backup_group.command("list")
@click.option("--vm", default=None, help="Only this VM's points (name or id).")
@json_option
@click.pass_context
def list_backups(ctx: click.Context, vm: str | None, as_json: bool) -> None:
    """List good backup points, oldest first (an unfinished point is never listed)."""
    backups = open_client(ctx).get("/backups", {"vm": vm} if vm else None)["backups"]
    if as_json:
        emit_json(backups)
        return
    click.echo(format_table(("Id", "VM", "Taken", "Kind", "Consistency", "Parent"), [
        (b["id"], b["vm_name"], b["created_at"], b["kind"], b["consistency"],
         (b["parent"] or "-")[:8]) for b in backups]))


@backup_group.command("show")
@click.argument("backup_id")
@click.pass_context
def show(ctx: click.Context, backup_id: str) -> None:
    """Show point BACKUP_ID as JSON (with its chain, full point first)."""
    emit_json(open_client(ctx).get(_path(backup_id)))


@backup_group.command("verify")
@click.argument("backup_id")
@json_option
@click.pass_context
def verify(ctx: click.Context, backup_id: str, as_json: bool) -> None:
    """Re-read every block of BACKUP_ID and the points it builds on against their
    checksums; exit 1 when a block does not match."""
    client = open_client(ctx)
    result = _result(client, client.post(_path(backup_id, "verify"), {}))
    if as_json:
        emit_json(result)
    else:
        for problem in result["problems"]:
            click.echo(problem, err=True)
        click.echo(f"backup {backup_id}: {len(result['points'])} point(s) "
                   f"{'verified, every block matches' if result['ok'] else 'DAMAGED'}")
    if not result["ok"]:
        ctx.exit(1)


@backup_group.command("restore")
@click.argument("backup_id", metavar="ID|VM")
@click.option("--as", "name", default=None,
              help="Restore as a new VM of this name (new id). Without it: in place "
                   "(the VM must be Off), or the removed VM again.")
@click.option("--to-time", "to_time", default=None, metavar="TIME",
              help="The VM's newest good point at or before TIME: ISO 8601 or "
                   "'YYYY-MM-DD HH:MM' (without an offset: this machine's time zone).")
@json_option
@click.pass_context
def restore(ctx: click.Context, backup_id: str, name: str | None, to_time: str | None,
            as_json: bool) -> None:
    """Restore backup point ID (or, with --to-time, VM's point at that time)."""
    client = open_client(ctx)
    body: dict[str, Any] = {"name": name}
    if to_time is not None:
        zone = datetime.now().astimezone().tzinfo or UTC
        try:
            when = parse_time(to_time, zone)
        except InvalidSetting as err:
            raise click.BadParameter(err.message, ctx, param_hint="--to-time") from err
        body["to_time"] = when.isoformat()
        if not as_json:
            click.echo(f"point in time: {when.isoformat()} (time zone {when.tzname()})")
    vm = _result(client, client.post(_path(backup_id, "restore"), body))
    if as_json:
        emit_json(vm)
        return
    how = "in place" if vm.get("in_place") else "as a VM"
    click.echo(f"restored {vm.get('restored_from', backup_id)} {how}: {vm['name']} "
               f"({vm['state']}), id {vm['id']}")


@backup_group.command("remove")
@click.argument("backup_id")
@click.pass_context
def remove(ctx: click.Context, backup_id: str) -> None:
    """Remove point BACKUP_ID (refused while later incremental points build on it)."""
    removed = open_client(ctx).delete(_path(backup_id))
    click.echo(f"removed backup {removed['removed']} ({removed['folder']})")


@backup_group.command("schedule")
@click.argument("vm")
@click.option("--to", "target", type=click.Path(file_okay=False), default=None,
              help="An existing folder the service backs VM up into.")
@click.option("--every", "every_minutes", type=click.IntRange(1, 60 * 24 * 366),
              default=None, metavar="MINUTES", help="How often (the first run is at once).")
@click.option("--full", is_flag=True, help="Full points every time (default: incremental).")
@click.option("--keep-daily", type=click.IntRange(0, 10_000), default=0,
              help="Retention after each run: newest point of this many days.")
@click.option("--keep-weekly", type=click.IntRange(0, 10_000), default=0,
              help="... and of this many ISO weeks.")
@click.option("--off", is_flag=True, help="Remove VM's schedule.")
@click.pass_context
def schedule(ctx: click.Context, vm: str, target: str | None, every_minutes: int | None,
             full: bool, keep_daily: int, keep_weekly: int, off: bool) -> None:
    """Have the service back VM up on a schedule (or --off to stop)."""
    client = open_client(ctx)
    if off:
        click.echo(f"removed the backup schedule of {client.delete(_schedule(vm))['removed']}")
        return
    if target is None or every_minutes is None:
        raise click.UsageError("give --to DIR and --every MINUTES (or --off)", ctx)
    body = {"target": os.path.abspath(os.path.expanduser(target)),
            "every_minutes": every_minutes, "incremental": not full,
            "keep_daily": keep_daily, "keep_weekly": keep_weekly}
    done = client.request("PUT", _schedule(vm), body=body)
    click.echo(f"{done['vm']}: backed up into {done['target']} every {every_minutes} "
               f"minutes, next run {done['next_run']}")


@backup_group.command("schedules")
@json_option
@click.pass_context
def schedules(ctx: click.Context, as_json: bool) -> None:
    """List backup schedules with their last and next runs."""
    found = open_client(ctx).get("/backups/schedules")["schedules"]
    if as_json:
        emit_json(found)
        return
    click.echo(format_table(("VM", "Every (min)", "Kind", "Target", "Last run", "Next run"), [
        (s["vm"], s["every_minutes"], "incremental" if s["incremental"] else "full",
         s["target"], s["last_run"], s["next_run"]) for s in found]))


def _schedule(vm: str) -> str:
    return f"/backups/schedules/{quote(vm, safe='')}"
