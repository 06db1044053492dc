"""``viridian``: the root command, its error boundary, ``serve``, and the command groups.

Every command except ``serve``, ``guestkit`` and ``disk`` is a client of the service API
(``viridian.cli.client``). Errors are shown in one place, :class:`ViridianGroup`: any
``ViridianError`` or click usage error becomes ``error: <message>`` on stderr and the
exit code the error names (api.md: 2 bad input, 3 not found, 4 conflict, 5 unauthorized,
6 service/host failure, 7 service unreachable).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click

from viridian import config
from viridian.cli import (
    vm_integration,  # noqa: F401 - adds vm integration/exec/copy-file
    vm_measure,  # noqa: F401 - adds vm measure
)
from viridian.cli.client import ClientOptions
from viridian.cli.host import host_group
from viridian.cli.vm import vm_group
from viridian.errors import ViridianError

__all__ = ["CliError", "ViridianGroup", "cli", "main"]

OPTIONAL_GROUPS = (
    ("viridian.cli.guestkit", "guestkit_group", "guestkit"),
    ("viridian.cli.disk", "disk_group", "disk"),
    ("viridian.cli.plan", "plan_command", "plan"),
    ("viridian.cli.counters", "counters_command", "counters"),
    ("viridian.cli.bpa", "bpa_command", "bpa"),
    ("viridian.cli.switch", "switch_group", "switch"),
    ("viridian.cli.checkpoint", "checkpoint_group", "checkpoint"),
)


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


class ViridianGroup(click.Group):
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


@click.group(cls=ViridianGroup)
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
@click.version_option(package_name="viridian")
@click.pass_context
def cli(ctx: click.Context, url: str, token: str | None, data_dir: Path | None) -> None:
    """viridian: Hyper-V-style virtual machines on QEMU, managed through one service."""
    ctx.obj = ClientOptions(url, token, data_dir or config.default_data_dir())


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
@click.pass_obj
def serve(options: ClientOptions, serve_data_dir: Path | None, listen: tuple[str, int]) -> None:
    """Run the management service (in the foreground)."""
    from viridian.service.server import serve as run_service

    host, port = listen
    run_service(data_dir=serve_data_dir or options.data_dir, host=host, port=port)


def _add_optional_groups(group: click.Group, entries: Sequence[tuple[str, str, str]]) -> None:
    """Register groups whose modules may be absent (being written); a missing one is left out."""
    for module_name, attribute, command_name in entries:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        group.add_command(getattr(module, attribute), command_name)


cli.add_command(host_group, "host")
cli.add_command(vm_group, "vm")
_add_optional_groups(cli, OPTIONAL_GROUPS)


def main() -> None:
    """Console-script entry point (``viridian``)."""
    cli(prog_name="viridian")


if __name__ == "__main__":
    main()
