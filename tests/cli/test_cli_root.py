"""The root command: ``serve``, optional groups, usage errors."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import click
import pytest

from tests.cli.cli_harness import invoke
from viridian.cli.lazy import LazyCommand, LazyGroup
from viridian.cli.main import cli


def _add_optional_groups(group: LazyGroup, entries: list[tuple[str, str, str]]) -> None:
    """Register lazy groups and try to load each, as running the command would."""
    for module_name, attribute, command_name in entries:
        group.add_lazy(command_name, LazyCommand(module_name, attribute, ""))
        group.load(command_name)


def _subcommand(group: click.Group, name: str) -> click.Command:
    command = group.get_command(click.Context(group), name)
    assert command is not None, name
    return command


@pytest.fixture
def serve_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Stands in for ``viridian.service.server`` (the service itself is not under test here)."""
    calls: list[dict[str, Any]] = []
    server = types.ModuleType("viridian.service.server")
    server.serve = lambda **kw: calls.append(kw)  # type: ignore[attr-defined]
    server.ListenerOptions = lambda *flags: flags  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "viridian.service.server", server)
    return calls


def test_serve_passes_data_dir_host_and_port(
    serve_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    result = invoke(["serve", "--data-dir", str(tmp_path), "--listen", "0.0.0.0:9090"])
    assert result.exit_code == 0, result.output
    assert serve_calls == [{"data_dir": tmp_path, "host": "0.0.0.0", "port": 9090,
                            "listener": (False, None, None)}]


def test_serve_passes_transport_flags(serve_calls: list[dict[str, Any]], tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    result = invoke(["serve", "--data-dir", str(tmp_path), "--insecure-http",
                     "--tls-cert", str(cert), "--tls-key", str(cert)])
    assert result.exit_code == 0, result.output
    assert serve_calls[0]["listener"] == (True, cert, cert)


def test_serve_defaults(serve_calls: list[dict[str, Any]], tmp_path: Path) -> None:
    result = invoke(["serve"], env={"VIRIDIAN_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert serve_calls == [{"data_dir": tmp_path, "host": "127.0.0.1", "port": 8080,
                            "listener": (False, None, None)}]


def test_serve_accepts_ipv6(serve_calls: list[dict[str, Any]], tmp_path: Path) -> None:
    invoke(["--data-dir", str(tmp_path), "serve", "--listen", "[::1]:8081"])
    assert serve_calls == [{"data_dir": tmp_path, "host": "::1", "port": 8081,
                            "listener": (False, None, None)}]


@pytest.mark.parametrize("listen", ["8080", "host:", "host:http", "h:70000", ":80"])
def test_serve_rejects_bad_listen_addresses(serve_calls: list[dict[str, Any]], listen: str) -> None:
    result = invoke(["serve", "--listen", listen])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: Invalid value for '--listen': {listen!r} is not ")
    assert "e.g. 127.0.0.1:8080" in result.stderr
    assert serve_calls == []


def test_unknown_option_is_an_error_line_with_a_hint() -> None:
    result = invoke(["--bogus"])
    assert result.exit_code == 2
    assert result.stderr == ("error: No such option '--bogus'.\nTry 'viridian --help' for help.\n")


def test_group_without_command_shows_its_help() -> None:
    result = invoke(["vm"])
    assert result.exit_code == 2
    assert "Usage: viridian vm [OPTIONS] COMMAND" in result.stderr


def test_optional_groups_are_left_out_when_their_module_is_missing() -> None:
    group = LazyGroup()
    _add_optional_groups(group, [("viridian.cli.no_such_module", "x_group", "x")])
    assert group.commands == {}
    assert group.list_commands(click.Context(group)) == []


def test_optional_group_with_a_broken_import_is_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_group_mod.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        _add_optional_groups(LazyGroup(), [("broken_group_mod", "g", "g")])


def test_every_documented_command_exists() -> None:
    vm = _subcommand(cli, "vm")
    host = _subcommand(cli, "host")
    assert isinstance(vm, click.Group)
    assert isinstance(host, click.Group)
    assert set(vm.list_commands(click.Context(vm))) >= {  # later issues add more
        "new",
        "list",
        "show",
        "set",
        "start",
        "stop",
        "shutdown",
        "save",
        "pause",
        "resume",
        "reset",
        "remove",
    }
    assert set(host.commands) == {"show", "shutdown", "drain", "resume"}  # drain/resume: issue 15
    assert {"serve", "vm", "host"} <= set(cli.list_commands(click.Context(cli)))
