"""``viridian vm move`` (docs/api.md, "Migration"): move a VM to another viridian host,
quick (save, hand over, restore) or live (memory migrated while the guest runs).

The target's token is a peer credential the admin gives — ``--to-token-file FILE`` or
``VIRIDIAN_TARGET_TOKEN`` — and goes to the local service, which sends it only to the
``--to`` address. Within a failover cluster ``--to`` may name a member host and no token
is needed: the service reaches it at the URL the host publishes, with the cluster's peer
token (docs/architecture.md, "moves of HA VMs"). The local token file is never used for
the target (docs/api.md, "Authentication")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from viridian.cli.client import job_outcome, open_client, vm_path, wait_for_job
from viridian.cli.job import print_job_id
from viridian.cli.output import JobProgress, emit_json
from viridian.errors import BadRequest

__all__ = ["move_storage", "move_vm", "target_token"]

TOKEN_ENV = "VIRIDIAN_TARGET_TOKEN"


def target_token(token_file: str | None, to: str) -> str:
    """The target's token: from ``token_file``, else ``$VIRIDIAN_TARGET_TOKEN``; "" when
    ``to`` is a cluster host name (no ``://``) and neither is given.

    :raises BadRequest: a URL target without a token, the file unreadable or empty.
    """
    if token_file is not None:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as err:
            raise BadRequest(f"cannot read the target token file {token_file}: "
                             f"{err.strerror}; nothing was changed") from err
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token and "://" not in to:
            return ""  # a cluster member: the service uses the cluster's peer token
    if not token:
        raise BadRequest("give the target service's token with --to-token-file FILE or "
                         f"{TOKEN_ENV} (the local token is never sent to another host), or "
                         "name a host of this host's cluster with --to; nothing was changed")
    return token


@click.command("move")
@click.argument("name")
@click.option("--to", "to", required=True, metavar="URL|HOST",
              help="The target service, e.g. http://HOST:PORT, or a cluster host's name.")
@click.option("--quick", "mode", flag_value="quick",
              help="Save, hand over, restore on the target (shared storage).")
@click.option("--live", "mode", flag_value="live", default=True,
              help="Live migration while the guest runs (the default; shared storage).")
@click.option("--to-token-file", type=click.Path(dir_okay=False),
              help=f"File holding the target's token (else ${TOKEN_ENV}).")
@click.option("--bandwidth", type=click.IntRange(1, 1_000_000), metavar="MIB_S",
              help="Live: cap the migration at this many MiB/s (default: unlimited).")
@click.option("--downtime-limit", type=click.IntRange(1, 2_000_000), metavar="MS",
              help="Live: the longest pause allowed at the switch-over (QEMU's default 300).")
@click.option("--postcopy", is_flag=True,
              help="Live: switch over after the first pass; the target pulls the rest.")
@click.option("--with-storage", is_flag=True,
              help="Live, shared-nothing: copy the hard disks to the target's data folder.")
@click.option("--no-auto-converge", is_flag=True,
              help="Live: do not throttle a guest that dirties memory faster than it moves.")
@click.option("--no-wait", is_flag=True,
              help="Print the job id instead of waiting (then: viridian job wait ID).")
@click.option("--json", "as_json", is_flag=True, help="Print the job's result.")
@click.pass_context
def move_vm(ctx: click.Context, name: str, to: str, mode: str, to_token_file: str | None,
            bandwidth: int | None, downtime_limit: int | None, postcopy: bool,
            with_storage: bool, no_auto_converge: bool, no_wait: bool, as_json: bool) -> None:
    """Move VM NAME to the viridian host at --to (like Move-VM)."""
    body: dict[str, Any] = {"to": to, "mode": mode}
    token = target_token(to_token_file, to)
    if token:
        body["token"] = token
    if mode == "live":
        body.update(auto_converge=not no_auto_converge, postcopy=postcopy,
                    with_storage=with_storage)
        if bandwidth is not None:
            body["bandwidth_mib_s"] = bandwidth
        if downtime_limit is not None:
            body["downtime_limit_ms"] = downtime_limit
    elif bandwidth or downtime_limit or postcopy or no_auto_converge or with_storage:
        raise BadRequest("--bandwidth, --downtime-limit, --postcopy, --with-storage and "
                         "--no-auto-converge are for --live moves; nothing was changed")
    client = open_client(ctx)
    job = client.post(vm_path(name, "move"), body)
    if no_wait:
        print_job_id(job)
        return
    result = job_outcome(wait_for_job(client, job, JobProgress()))["result"]
    if as_json:
        emit_json(result)
        return
    click.echo(_summary(result))


def _summary(result: dict[str, Any]) -> str:
    line = f"moved {result['vm']} to {result['moved_to']} ({result['mode']})"
    if result["mode"] == "live":
        return line + (f": total {result['total_ms']} ms, downtime {result['downtime_ms']} ms"
                       f" + switch-over {result['commit_ms']} ms")
    return line + f": downtime {result['downtime_ms']} ms"


@click.command("move-storage")
@click.argument("name")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--no-wait", is_flag=True,
              help="Print the job id instead of waiting (then: viridian job wait ID).")
@click.option("--json", "as_json", is_flag=True, help="Print the job's result.")
@click.pass_context
def move_storage(ctx: click.Context, name: str, folder: str, no_wait: bool,
                 as_json: bool) -> None:
    """Move the hard disks of VM NAME (Running or Off) into FOLDER on this host (like
    Move-VMStorage; live while it runs)."""
    client = open_client(ctx)
    job = client.post(vm_path(name, "move-storage"),
                      {"folder": os.path.abspath(os.path.expanduser(folder))})
    if no_wait:
        print_job_id(job)
        return
    result = job_outcome(wait_for_job(client, job, JobProgress()))["result"]
    if as_json:
        emit_json(result)
        return
    for old, new in result["moved"].items():
        click.echo(f"moved {old} -> {new}")
