"""``viridian``: the root command, its error boundary, ``serve``, and the command groups.

Every command except ``serve``, ``guestkit`` and ``disk`` is a client of the service API
(``viridian.cli.client``). Errors are shown in one place, :class:`ViridianGroup`: any
``ViridianError`` or click usage error becomes ``error: <message>`` on stderr and the
exit code the error names (docs/api.md: 2 bad input, 3 not found, 4 conflict,
5 unauthorized, 6 service/host failure, 7 service unreachable).

Start-up cost matters (docs/architecture.md, "CLI latency"): this module imports only
click and the error root; each subcommand's module is imported when it runs
(:class:`viridian.cli.lazy.LazyGroup`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from viridian import config
from viridian.cli.lazy import LazyCommand, LazyGroup
from viridian.errors import ViridianError

if TYPE_CHECKING:
    from viridian.cli.options import ClientOptions

__all__ = ["COMMANDS", "CliError", "ViridianGroup", "cli", "main"]

COMMANDS = {
    "host": LazyCommand("viridian.cli.host", "host_group", "The virtualization host."),
    "vm": LazyCommand("viridian.cli.vm", "vm_group", "Virtual machines."),
    "job": LazyCommand(
        "viridian.cli.job", "job_group", "Jobs: list, show, wait for or cancel them."
    ),
    "guestkit": LazyCommand(
        "viridian.cli.guestkit",
        "guestkit_group",
        "Tiny real Linux guests made from this host's Debian packages.",
    ),
    "disk": LazyCommand(
        "viridian.cli.disk",
        "disk_group",
        "Create, inspect, convert, capture, compact, expand, merge and check VHD and VHDX "
        "disks.",
    ),
    "plan": LazyCommand(
        "viridian.cli.plan",
        "plan_command",
        "Size hosts for the workloads in WORKLOAD_FILE (YAML; see docs/planner-example.yaml): "
        "hosts needed with N+1 failover, memory, VP:LP, CPU, drives and cost per candidate.",
    ),
    "counters": LazyCommand(
        "viridian.cli.counters",
        "counters_command",
        "Sample counters (all when no PATH is given), or name them: 'viridian counters list'.",
    ),
    "bpa": LazyCommand(
        "viridian.cli.bpa",
        "bpa_command",
        "Check the host and its VMs against virtualization best practices.",
    ),
    "switch": LazyCommand(
        "viridian.cli.switch",
        "switch_group",
        "Virtual switches: external (bound to a host adapter), internal (VMs + host), "
        "private (VMs only), nat (internal + NAT + DHCP/DNS).",
    ),
    "cluster": LazyCommand(
        "viridian.cli.cluster",
        "cluster_group",
        "The failover cluster (etcd): membership, hosts, highly available VMs.",
    ),
    "checkpoint": LazyCommand(
        "viridian.cli.checkpoint",
        "checkpoint_group",
        "Checkpoints (Hyper-V snapshots): take, list, apply, rename and delete them.",
    ),
    "backup": LazyCommand(
        "viridian.cli.backup",
        "backup_group",
        "Backup points of VMs (live while they run) in folder targets: take, list, show, "
        "verify, restore and remove them.",
    ),
    "library": LazyCommand(
        "viridian.cli.library",
        "library_group",
        "Libraries: storage paths holding ISOs, disks, templates and cloud-init snippets.",
    ),
    "template": LazyCommand(
        "viridian.cli.template",
        "template_group",
        "Templates (a VM's generalised configuration and disks) and VMs made from them.",
    ),
    "hostgroup": LazyCommand(
        "viridian.cli.hostgroup",
        "hostgroup_group",
        'Host groups: a tree of hosts ("All Hosts/Prod/Rack1") for placement and delegation.',
    ),
    # access (issue 17): users, realms, roles, grants, tokens, quotas, audit, login
    "user": LazyCommand(
        "viridian.cli.user",
        "user_group",
        "Users who may log in (local, pam or an LDAP realm) and their groups.",
    ),
    "realm": LazyCommand(
        "viridian.cli.realm",
        "realm_group",
        "Realms: local and pam (built in) and LDAP/AD directories.",
    ),
    "role": LazyCommand(
        "viridian.cli.role",
        "role_group",
        "Roles: Administrator, Operator, Viewer, VM User and your own.",
    ),
    "grant": LazyCommand(
        "viridian.cli.grant",
        "grant_command",
        "Give ROLE to USER or @GROUP on a scope.",
    ),
    "revoke": LazyCommand(
        "viridian.cli.grant",
        "revoke_command",
        "Take ROLE from USER or @GROUP on a scope.",
    ),
    "grants": LazyCommand(
        "viridian.cli.grant",
        "grants_command",
        "List every grant.",
    ),
    "token": LazyCommand(
        "viridian.cli.token",
        "token_group",
        "API tokens: named, revocable, shown once.",
    ),
    "quota": LazyCommand(
        "viridian.cli.quota",
        "quota_group",
        "Self-service quotas: what a user may create and own.",
    ),
    "audit": LazyCommand(
        "viridian.cli.audit",
        "audit_command",
        "Show the audit log: logins, denials and every change, oldest first.",
    ),
    "login": LazyCommand(
        "viridian.cli.login",
        "login_command",
        "Log in to the service at URL; later commands with --url URL use the session.",
    ),
    "logout": LazyCommand(
        "viridian.cli.login",
        "logout_command",
        "End the session 'viridian login URL' stored, on the service and here.",
    ),
}
"""The root's subcommands, imported only when used (module, attribute, ``--help`` line)."""


class CliError(click.ClickException):
    """An error as the user sees it: ``error: <message>`` (plus a hint line) and an exit code."""

    def __init__(self, message: str, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message)
        # click types exit_code as a ClassVar, but Command.main reads it from the instance.
        self.exit_code = exit_code  # type: ignore[misc]
        self.hint = hint

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=True)
        if self.hint:
            click.echo(self.hint, file=file, err=True)


@contextmanager
def shown_as_cli_errors() -> Iterator[None]:
    """The CLI's one translation point: viridian and click errors → :class:`CliError`."""
    try:
        yield
    except (CliError, click.exceptions.NoArgsIsHelpError):
        raise
    except click.UsageError as err:
        raise CliError(err.format_message(), err.exit_code, _help_hint(err.ctx)) from err
    except click.ClickException as err:
        raise CliError(err.format_message(), err.exit_code) from err
    except ViridianError as err:
        raise CliError(str(err), err.exit_code) from err


def _help_hint(ctx: click.Context | None) -> str | None:
    if ctx is None:
        return None
    return f"Try '{ctx.command_path} --help' for help."


class ViridianGroup(LazyGroup):
    """Root group whose parsing and invocation errors all pass :func:`shown_as_cli_errors`."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with shown_as_cli_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with shown_as_cli_errors():
            return super().invoke(ctx)


@click.group(cls=ViridianGroup, lazy=COMMANDS)
@click.option(
    "--url",
    envvar="VIRIDIAN_URL",
    default=config.DEFAULT_URL,
    show_default=True,
    help="Where the service listens (env VIRIDIAN_URL).",
)
@click.option(
    "--token",
    envvar="VIRIDIAN_TOKEN",
    help="API token (env VIRIDIAN_TOKEN); default: the token file in the data folder.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder holding the token (env VIRIDIAN_DATA_DIR).",
)
@click.option(
    "--ca-file",
    envvar="VIRIDIAN_CA_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Verify an https:// service's certificate with this CA bundle (env VIRIDIAN_CA_FILE).",
)
@click.option(
    "--trust-fingerprint",
    metavar="SHA256",
    help="Trust (and pin) an https:// service whose certificate has this SHA-256 fingerprint.",
)
@click.version_option(package_name="viridian")
@click.pass_context
def cli(
    ctx: click.Context,
    url: str,
    token: str | None,
    data_dir: Path | None,
    ca_file: Path | None,
    trust_fingerprint: str | None,
) -> None:
    """viridian: Hyper-V-style virtual machines on QEMU, managed through one service."""
    from viridian.cli.options import ClientOptions

    if token is None and os.environ.get("VIRIDIAN_TOKEN") == "":
        token = ""  # set but empty: an error when a request is made (viridian.cli.credentials)
    ctx.obj = ClientOptions(url, token, data_dir or config.default_data_dir(),
                            ca_file or None, trust_fingerprint)


class ListenAddress(click.ParamType[tuple[str, int]]):
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) → ``(host, port)``."""

    name = "HOST:PORT"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        host, _, port = str(value).rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            self.fail(f"{value!r} is not HOST:PORT with a port 1-65535, e.g. 127.0.0.1:8080")
        return host, int(port)


@cli.command()
@click.option(
    "--data-dir",
    "serve_data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder: catalog, token, VM folders (env VIRIDIAN_DATA_DIR).",
)
@click.option(
    "--listen",
    type=ListenAddress(),
    default=f"{config.DEFAULT_HOST}:{config.DEFAULT_PORT}",
    show_default=True,
    help="Address and port to listen on.",
)
@click.option(
    "--insecure-http",
    is_flag=True,
    help="Plain HTTP even off loopback (warned); default: HTTPS unless loopback.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="PEM certificate to serve HTTPS with (default: self-signed, made in the data folder).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="PEM private key of --tls-cert.",
)
@click.pass_obj
def serve(
    options: ClientOptions,
    serve_data_dir: Path | None,
    listen: tuple[str, int],
    insecure_http: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Run the management service (in the foreground)."""
    from viridian.service.server import ListenerOptions
    from viridian.service.server import serve as run_service

    host, port = listen
    run_service(data_dir=serve_data_dir or options.data_dir, host=host, port=port,
                listener=ListenerOptions(insecure_http, tls_cert, tls_key))


def main() -> None:
    """Console-script entry point (``viridian``)."""
    cli(prog_name="viridian")


if __name__ == "__main__":
    main()
