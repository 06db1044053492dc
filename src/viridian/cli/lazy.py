"""A click group that imports a subcommand's module only when that subcommand runs.

Why: every ``viridian`` invocation used to import every command module (the disk
library, the planner, YAML...) before sending one request (docs/architecture.md, "CLI
latency"). A :class:`LazyGroup` knows each lazy subcommand by a :class:`LazyCommand` —
module, attribute and the one-line summary ``--help`` shows — and imports the module in
:meth:`LazyGroup.get_command`. A module that does not exist (yet) leaves its command out;
a module that exists but fails to import raises, so a broken import is never hidden.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

__all__ = ["LazyCommand", "LazyGroup"]


@dataclass(frozen=True)
class LazyCommand:
    """Where a subcommand lives (``module``.``attribute``) and its ``--help`` summary."""

    module: str
    attribute: str
    summary: str


class LazyGroup(click.Group):
    """A group whose ``lazy`` subcommands are imported on first use."""

    def __init__(
        self, *args: Any, lazy: Mapping[str, LazyCommand] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, LazyCommand] = dict(lazy or {})

    def add_lazy(self, name: str, entry: LazyCommand) -> None:
        """Register ``name`` to be imported from ``entry`` on first use."""
        self.lazy[name] = entry

    def list_commands(self, ctx: click.Context) -> list[str]:
        present = {name for name, entry in self.lazy.items() if _module_exists(entry.module)}
        return sorted(set(self.commands) | present)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            command = self.load(cmd_name)
            if command is None:
                return None
        return super().get_command(ctx, cmd_name)

    def load(self, name: str) -> click.Command | None:
        """Import the command ``name``; None when its module does not exist.

        :raises ModuleNotFoundError: the module exists but one of its imports is missing.
        """
        entry = self.lazy[name]
        try:
            module = importlib.import_module(entry.module)
        except ModuleNotFoundError as err:
            if err.name != entry.module:
                raise
            return None
        command: click.Command = getattr(module, entry.attribute)
        self.add_command(command, name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands table, from the summaries for commands not imported yet."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is not None and command.hidden:
                continue
            if command is not None:
                summary = command.get_short_help_str(formatter.width)
            else:
                summary = self.lazy[name].summary
            rows.append((name, summary))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
