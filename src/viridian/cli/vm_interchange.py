"""``viridian vm export`` and ``viridian vm import`` (docs/api.md, "Export and import"):
Hyper-V's export of a VM that is Off or Saved, and its three import modes."""

from __future__ import annotations

import os
from typing import Any

import click

from viridian.cli.client import job_outcome, open_client, vm_path, wait_for_job
from viridian.cli.job import print_job_id
from viridian.cli.output import JobProgress, emit_json

__all__ = ["export_vm", "import_vm"]

MODES = "--register-in-place (the folder becomes the VM's) or --copy (restore; add --new-id " \
        "for a copy with a new id)"


def _absolute(path: str) -> str:
    """Paths go to a service with another working directory: make them absolute here."""
    return os.path.abspath(os.path.expanduser(path))


def _follow(client: Any, job: dict[str, Any], no_wait: bool) -> dict[str, Any] | None:
    if no_wait:
        print_job_id(job)
        return None
    result = job_outcome(wait_for_job(client, job, JobProgress()))["result"]
    assert isinstance(result, dict)
    return result


no_wait_option = click.option(
    "--no-wait", is_flag=True,
    help="Print the job id instead of waiting (then: viridian job wait ID).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the job's result.")


@click.command("export")
@click.argument("name")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--ovf", "as_ovf", is_flag=True,
              help="Write an OVF 1.x package (FOLDER/NAME/NAME.ovf, .mf, VMDK disks).")
@click.option("--ova", "as_ova", is_flag=True,
              help="Write the OVF package as one file, FOLDER/NAME.ova.")
@click.option("--from-backup", "backup_id", metavar="ID",
              help="Export NAME as it was at backup point ID (it may be running).")
@no_wait_option
@json_option
@click.pass_context
def export_vm(ctx: click.Context, name: str, folder: str, as_ovf: bool, as_ova: bool,
              backup_id: str | None, no_wait: bool, as_json: bool) -> None:
    """Export VM NAME (Off or Saved) into FOLDER/NAME: its configuration, disks,
    checkpoints and saved state (like Export-VM).

    With --ovf or --ova: a DMTF OVF 1.x package other hypervisors import (FOLDER/NAME/ or
    FOLDER/NAME.ova); what OVF cannot carry is listed."""
    if as_ovf and as_ova:
        raise click.UsageError("give --ovf or --ova, not both", ctx)
    kind = "ovf" if as_ovf else "ova" if as_ova else "native"
    client = open_client(ctx)
    result = _follow(client, client.post(vm_path(name, "export"),
                                         {"folder": _absolute(folder), "format": kind,
                                          "from_backup": backup_id}),
                     no_wait)
    if result is None:
        return
    if as_json:
        emit_json(result)
        return
    where = result.get("file") or result["folder"]
    if result.get("from_backup"):
        click.echo(f"exported {result['vm']} as of backup {result['from_backup']} "
                   f"({result['point_created_at']}, {result['consistency']}-consistent) to "
                   f"{where}")
        return
    if kind == "native":
        click.echo(f"exported {result['vm']} ({result['state']}, {result['checkpoints']} "
                   f"checkpoints) to {where}")
        return
    click.echo(f"exported {result['vm']} ({result['state']}) as {kind.upper()} to {where}")
    for line in result.get("unexpressed") or []:
        click.echo(f"not in the OVF package: {line}", err=True)


@click.command("import")
@click.argument("folder", type=click.Path(), required=False)
@click.option("--from-libvirt", "domain", metavar="DOMAIN",
              help="Import the shut off domain DOMAIN of the local libvirt (V2V).")
@click.option("--register-in-place", is_flag=True,
              help="Register the VM where FOLDER is (same id); FOLDER becomes its folder.")
@click.option("--copy", is_flag=True,
              help="Copy the VM's files into the service's data folder (same id: a restore).")
@click.option("--new-id", is_flag=True, help="With --copy: give the copy a new id.")
@click.option("--name", "new_name", help="Register the VM under this name.")
@no_wait_option
@json_option
@click.pass_context
def import_vm(ctx: click.Context, folder: str | None, domain: str | None,
              register_in_place: bool, copy: bool, new_id: bool, new_name: str | None,
              no_wait: bool, as_json: bool) -> None:
    """Import the VM exported to FOLDER, or register a removed VM's folder again (like
    Import-VM), or import a foreign VM.

    A foreign VM becomes a new VM with copies of its disks: FOLDER is then a VMware .vmx,
    a Virtual PC/Server .vmc, a Hyper-V 2008 configuration XML, a libvirt domain XML,
    an OVF descriptor or an OVA, or --from-libvirt DOMAIN names a shut off libvirt
    domain."""
    if domain is not None or (folder is not None and os.path.isfile(folder)):
        _import_foreign(ctx, folder, domain, register_in_place or copy or new_id,
                        new_name, no_wait, as_json)
        return
    if folder is None:
        raise click.UsageError("give FOLDER (an export, or a foreign VM's configuration "
                               "file) or --from-libvirt DOMAIN", ctx)
    if new_id and not copy:
        raise click.UsageError("--new-id needs --copy (a VM registered in place keeps its "
                               "id)", ctx)
    if register_in_place == copy:
        raise click.UsageError(f"say how to import: {MODES}", ctx)
    body = {"path": _absolute(folder), "mode": "copy" if copy else "register_in_place",
            "new_id": new_id, "name": new_name}
    client = open_client(ctx)
    vm = _follow(client, client.post("/imports", body), no_wait)
    if vm is None:
        return
    if as_json:
        emit_json(vm)
        return
    how = "in place" if register_in_place else ("as a copy with a new id" if new_id
                                                else "as a copy")
    click.echo(f"registered {vm['name']} {how}: {vm['state']}, id {vm['id']}, "
               f"folder {vm['folder']}")
    for notice in vm.get("notices") or []:
        click.echo(f"note: {notice}", err=True)


def _import_foreign(ctx: click.Context, config: str | None, domain: str | None,
                    mode_given: bool, new_name: str | None, no_wait: bool,
                    as_json: bool) -> None:
    """A foreign VM always becomes a new VM with copies of its disks: no mode to give."""
    if config is not None and domain is not None:
        raise click.UsageError("give either a configuration file or --from-libvirt DOMAIN, "
                               "not both", ctx)
    if mode_given:
        raise click.UsageError("--register-in-place, --copy and --new-id are for exported "
                               "folders; a foreign VM is always imported as a new VM with "
                               "copies of its disks", ctx)
    client = open_client(ctx)
    job = client.post("/imports/libvirt", {"domain": domain, "name": new_name}) \
        if domain is not None else \
        client.post("/imports", {"path": _absolute(str(config)), "name": new_name})
    vm = _follow(client, job, no_wait)
    if vm is None:
        return
    if as_json:
        emit_json(vm)
        return
    click.echo(f"imported {vm['name']} ({vm['mode']}): {vm['state']}, id {vm['id']}, "
               f"folder {vm['folder']}")
    for line in vm.get("unmapped") or []:
        click.echo(f"not mapped as it was: {line}", err=True)
    for notice in vm.get("notices") or []:
        click.echo(f"note: {notice}", err=True)
