"""The token rule against the real service: `viridian serve` records where it listens,
the CLI sends the local token there and nowhere else (issue 13 #7)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator

import pytest

from tests.cli.cli_harness import invoke
from tests.cli.collector import Collector
from tests.service.harness import Service, running_service


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with running_service() as running:
        yield running


def test_serve_records_its_address_readable_by_its_owner_only(service: Service) -> None:
    path = service.data_dir / "service.json"
    record = json.loads(path.read_text())
    assert (record["host"], record["port"]) == ("127.0.0.1", service.port)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_local_token_reaches_the_local_service(service: Service) -> None:
    env = {"VIRIDIAN_DATA_DIR": str(service.data_dir)}
    result = invoke(["--url", f"http://localhost:{service.port}", "host", "show"], env=env)
    assert result.exit_code == 0, result.output


def test_local_token_never_reaches_another_port(service: Service) -> None:
    env = {"VIRIDIAN_DATA_DIR": str(service.data_dir)}
    with Collector() as collector:
        result = invoke(["--url", collector.url, "vm", "list"], env=env)
        assert result.exit_code == 5
        assert f"the local service listens on 127.0.0.1:{service.port}" in result.stderr
        assert collector.connections == 0
        assert service.token.encode() not in collector.received()
