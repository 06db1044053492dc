"""``viridian disk …`` through the local service, for files the service knows.

The disk commands work on image files directly, like ``qemu-img`` — unless the local
service runs (``<data>/service.json`` records its address and a live pid, as
:mod:`viridian.cli.credentials` reads it) and the file an operation would change is one
the service knows: a VM's drive, a checkpoint's base disk or overlay, a memory or saved
state (``POST /disks/uses``). Then the operation is sent to the service's disk wizard
(docs/api.md, "Disks"), which refuses what would break a VM or a checkpoint, naming
them, and otherwise runs it on that VM's queue. The service's errors reach the CLI root
as :class:`~viridian.errors.ViridianError` and exit with the error table's codes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from viridian.cli.credentials import read_service_record, recorder_alive
from viridian.cli.options import ClientOptions

if TYPE_CHECKING:  # the HTTP client is imported only when a local service runs
    from viridian.cli.client import ApiClient

__all__ = ["local_service_url", "run_on_service", "service_for"]

WILDCARD_HOSTS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def local_service_url(data_dir: Path) -> str | None:
    """The URL of the service that recorded itself in ``<data_dir>/service.json`` while
    its process still runs; None when no local service runs."""
    record = read_service_record(data_dir)
    pid = record.get("pid") if record else None
    if record is None or not isinstance(pid, int) or pid <= 0 or not recorder_alive(record):
        return None
    host = str(record.get("host", ""))
    host = WILDCARD_HOSTS.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{record.get('port')}"


def service_for(ctx: click.Context, paths: Sequence[Path | None]) -> ApiClient | None:
    """A client of the local service when it runs and knows one of ``paths``; else None
    (work on the files directly).

    :raises ViridianError: the service runs but could not be asked (no token, refused).
    """
    options = ctx.find_object(ClientOptions)
    url = local_service_url(options.data_dir) if options else None
    if options is None or url is None:
        return None
    from viridian.cli.client import ApiClient, Endpoint

    client = ctx.find_root().with_resource(
        ApiClient(Endpoint.resolve(url, options.token, options.data_dir)))
    wanted = [str(absolute(p)) for p in paths if p is not None]
    uses = client.post("/disks/uses", {"paths": wanted})["uses"]
    return client if uses else None


def absolute(path: Path) -> Path:
    """``path`` made absolute the way the shell meant it (the service has no cwd of ours)."""
    return Path(os.path.abspath(os.path.expanduser(path)))


def run_on_service(client: ApiClient, operation: str, body: dict[str, Any]) -> Any:
    """Run the disk wizard's ``operation`` as a job and return its result.

    :raises ViridianError: the service refused, or the job failed (its error).
    """
    from viridian.cli.client import job_outcome, wait_for_job

    job = client.post(f"/disks/{operation}", body)
    show: Callable[[dict[str, Any]], None] = _no_progress
    if sys.stderr.isatty():
        from viridian.cli.output import JobProgress

        show = JobProgress()
    return job_outcome(wait_for_job(client, job, show))["result"]


def _no_progress(job: dict[str, Any]) -> None:
    """Plain output stays as in local operation: only the result line."""
