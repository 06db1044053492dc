"""The local token goes only to the address the local service recorded (issue 13 #7)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.cli_harness import invoke
from tests.cli.collector import Collector
from tests.cli.fake_service import FakeService


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as listening:
        yield listening


def _record(data_dir: Path, host: str, port: int, pid: int | None = None) -> None:
    record = {"host": host, "port": port, **({"pid": pid} if pid else {})}
    (data_dir / "service.json").write_text(json.dumps(record))


def test_local_token_is_not_sent_to_another_address(
    fake: FakeService, collector: Collector, tmp_path: Path
) -> None:
    fake.record_as_local_service(tmp_path)
    result = invoke(["--url", collector.url, "--data-dir", str(tmp_path), "vm", "list"])
    assert result.exit_code == 5
    assert result.stderr == (
        f"error: not sending the local token ({tmp_path / 'token'}) to {collector.url}: "
        f"the local service listens on 127.0.0.1:{fake.url.rsplit(':', 1)[1]} (recorded in "
        f"{tmp_path / 'service.json'}); for that service pass --token or set VIRIDIAN_TOKEN\n"
    )
    assert collector.received() == b""
    assert collector.connections == 0


def test_without_a_recorded_address_the_local_token_stays_home(
    collector: Collector, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("root-admin-token\n")
    result = invoke(["--url", collector.url, "--data-dir", str(tmp_path), "host", "show"])
    assert result.exit_code == 5
    assert "no local service has recorded its address in" in result.stderr
    assert collector.connections == 0 and collector.received() == b""


def test_a_stale_record_does_not_count(collector: Collector, tmp_path: Path) -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    (tmp_path / "token").write_text("root-admin-token\n")
    _record(tmp_path, "127.0.0.1", int(collector.url.rsplit(":", 1)[1]), pid=done.pid)
    result = invoke(["--url", collector.url, "--data-dir", str(tmp_path), "vm", "list"])
    assert result.exit_code == 5
    assert "no longer runs" in result.stderr
    assert collector.connections == 0


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_loopback_names_are_one_address(fake: FakeService, tmp_path: Path, host: str) -> None:
    fake.record_as_local_service(tmp_path)
    port = fake.url.rsplit(":", 1)[1]
    url = f"http://{host}:{port}"
    result = invoke(["--url", url, "--data-dir", str(tmp_path), "vm", "list"])
    if host == "[::1]":  # the fake listens on IPv4 only: unreachable, but allowed to try
        assert result.exit_code == 7, result.output
    else:
        assert result.exit_code == 0, result.output
        assert fake.requests[-1].headers["authorization"] == f"Bearer {fake.token}"


def test_service_listening_everywhere_is_reached_through_loopback(
    fake: FakeService, tmp_path: Path
) -> None:
    fake.record_as_local_service(tmp_path)
    _record(tmp_path, "0.0.0.0", int(fake.url.rsplit(":", 1)[1]))
    result = invoke(["--url", fake.url, "--data-dir", str(tmp_path), "vm", "list"])
    assert result.exit_code == 0, result.output


def test_explicit_token_goes_anywhere(fake: FakeService, tmp_path: Path) -> None:
    result = invoke(["vm", "list"], env={"VIRIDIAN_URL": fake.url, "VIRIDIAN_TOKEN": fake.token})
    assert result.exit_code == 0, result.output


def test_empty_viridian_token_is_an_error(
    fake: FakeService, collector: Collector, tmp_path: Path
) -> None:
    fake.record_as_local_service(tmp_path)
    env = {"VIRIDIAN_TOKEN": "", "VIRIDIAN_DATA_DIR": str(tmp_path)}
    result = invoke(["--url", collector.url, "vm", "list"], env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        "error: the token given by --token or VIRIDIAN_TOKEN is empty; give the token, or "
        "unset VIRIDIAN_TOKEN to use the local service's token file\n"
    )
    assert collector.connections == 0


def test_empty_token_option_is_an_error(fake: FakeService) -> None:
    result = invoke(["--url", fake.url, "--token", "", "vm", "list"])
    assert result.exit_code == 2
    assert fake.requests == []
