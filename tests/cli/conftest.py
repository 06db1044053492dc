"""Fixtures for the CLI's unit tests: a fake service and an in-process runner of ``viridian``."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner, Result
from fake_service import FakeService

from viridian.cli.main import cli

Run = Callable[..., Result]
CLEAN_ENV = {"VIRIDIAN_URL": None, "VIRIDIAN_TOKEN": None, "VIRIDIAN_DATA_DIR": None}


@pytest.fixture
def fake() -> Iterator[FakeService]:
    service = FakeService().start()
    yield service
    service.stop()


def invoke(args: list[str], env: dict[str, str | None] | None = None) -> Result:
    """Run ``viridian ARGS`` in this process with no VIRIDIAN_* variables unless given."""
    return CliRunner(env={**CLEAN_ENV, **(env or {})}).invoke(cli, args, catch_exceptions=False)


@pytest.fixture
def run(fake: FakeService) -> Run:
    """``run("vm", "list")``: the CLI pointed at the fake service with the right token."""

    def run_cli(*args: str) -> Result:
        return invoke(["--url", fake.url, "--token", fake.token, *args])

    return run_cli


@pytest.fixture
def closed_port_url() -> str:
    """A URL on which nothing listens (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
