"""Running ``viridian`` in this process, as the CLI tests do."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import CliRunner, Result

from viridian.cli.main import cli

Run = Callable[..., Result]
"""``run("vm", "list")`` → the result of ``viridian --url FAKE --token TOKEN vm list``."""

CLEAN_ENV: dict[str, str | None] = {
    "VIRIDIAN_URL": None,
    "VIRIDIAN_TOKEN": None,
    "VIRIDIAN_DATA_DIR": None,
}


def invoke(args: list[str], env: dict[str, str | None] | None = None) -> Result:
    """Run ``viridian ARGS`` with no VIRIDIAN_* variables except those in ``env``."""
    runner = CliRunner(env={**CLEAN_ENV, **(env or {})})
    return runner.invoke(cli, args, prog_name="viridian", catch_exceptions=False)
