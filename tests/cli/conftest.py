"""Fixtures for the CLI's unit tests: a fake service and an in-process runner of ``viridian``."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from click.testing import Result

from tests.cli.cli_harness import Run, invoke
from tests.cli.fake_service import FakeService


@pytest.fixture
def fake() -> Iterator[FakeService]:
    service = FakeService().start()
    yield service
    service.stop()


@pytest.fixture
def run(fake: FakeService) -> Run:
    """The CLI pointed at the fake service with the right token."""

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
