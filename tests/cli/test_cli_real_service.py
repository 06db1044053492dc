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


def _define_off_vm(service: Service, name: str) -> None:
    with service.client() as api:
        answer = api.post("/vms", json={"name": name, "memory_mb": 64})
        assert answer.status_code in (201, 409), answer.text


def test_console_refused_by_the_service_never_says_connected(service: Service) -> None:
    _define_off_vm(service, "con-off")
    env = {"VIRIDIAN_DATA_DIR": str(service.data_dir)}
    result = invoke(["--url", service.url, "vm", "console", "con-off"], env=env)
    assert result.exit_code == 4, result.output
    assert "Connected" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert "con-off" in result.stderr and "Off" in result.stderr


def test_console_with_a_wrong_token_exits_5(service: Service) -> None:
    _define_off_vm(service, "con-off")
    result = invoke(["--url", service.url, "--token", "wrong", "vm", "console", "con-off"])
    assert result.exit_code == 5, result.output
    assert result.stderr == (
        "error: missing or wrong token (sent the token given by --token or VIRIDIAN_TOKEN)\n"
    )


def test_console_to_no_service_exits_7_like_every_command(closed_port_url: str) -> None:
    result = invoke(["--url", closed_port_url, "--token", "t", "vm", "console", "x"])
    assert result.exit_code == 7, result.output
    assert result.stderr.startswith(f"error: the viridian service at {closed_port_url} cannot ")
    assert "Connected" not in result.stderr
