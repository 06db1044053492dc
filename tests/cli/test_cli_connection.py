"""Finding the service and the token; unreachable, unauthorized and failing services."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cli.cli_harness import Run, invoke
from tests.cli.fake_service import FakeService
from viridian import config
from viridian.cli.client import error_from_body
from viridian.errors import InvalidTransition, NotFound


def test_token_comes_from_the_data_dir_option(fake: FakeService, tmp_path: Path) -> None:
    fake.record_as_local_service(tmp_path)
    result = invoke(["--url", fake.url, "--data-dir", str(tmp_path), "vm", "list"])
    assert result.exit_code == 0, result.output


def test_token_and_url_come_from_the_environment(fake: FakeService) -> None:
    result = invoke(["vm", "list"], env={"VIRIDIAN_URL": fake.url, "VIRIDIAN_TOKEN": fake.token})
    assert result.exit_code == 0, result.output


def test_token_file_found_through_viridian_data_dir(fake: FakeService, tmp_path: Path) -> None:
    fake.record_as_local_service(tmp_path)
    result = invoke(
        ["vm", "list"], env={"VIRIDIAN_URL": fake.url, "VIRIDIAN_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output


def test_url_without_scheme_means_http(fake: FakeService) -> None:
    result = invoke(
        ["--url", fake.url.removeprefix("http://"), "--token", fake.token, "vm", "list"]
    )
    assert result.exit_code == 0, result.output


def test_missing_token_exits_5_and_says_where_it_looked(fake: FakeService, tmp_path: Path) -> None:
    result = invoke(["--url", fake.url, "--data-dir", str(tmp_path), "vm", "list"])
    assert result.exit_code == 5
    assert result.stderr == (
        f"error: missing or wrong token (sent no token: {config.token_path(tmp_path)} could "
        "not be read (No such file or directory); pass --token or set VIRIDIAN_TOKEN)\n"
    )
    assert "authorization" not in fake.requests[0].headers


def test_wrong_token_exits_5(fake: FakeService) -> None:
    result = invoke(["--url", fake.url, "--token", "guess", "host", "show"])
    assert result.exit_code == 5
    assert result.stderr == (
        "error: missing or wrong token (sent the token given by --token or VIRIDIAN_TOKEN)\n"
    )


def test_unreachable_service_exits_7_naming_url_and_serve(closed_port_url: str) -> None:
    result = invoke(["--url", closed_port_url, "--token", "t", "vm", "list"])
    assert result.exit_code == 7
    assert result.stderr.startswith(f"error: the viridian service at {closed_port_url} cannot ")
    assert "start it with `viridian serve`" in result.stderr
    assert result.stdout == ""


def test_unreachable_service_without_token_is_still_exit_7(
    closed_port_url: str, tmp_path: Path
) -> None:
    result = invoke(["--url", closed_port_url, "--data-dir", str(tmp_path), "vm", "start", "x"])
    assert result.exit_code == 7


def test_server_error_exits_6(fake: FakeService, run: Run) -> None:
    fake.broken = True
    result = run("vm", "list")
    assert result.exit_code == 6
    assert result.stderr == "error: boom\n"


def test_invalid_url_exits_2(fake: FakeService) -> None:
    result = invoke(["--url", "ftp://example.invalid", "--token", "t", "vm", "list"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid service URL 'ftp://example.invalid'")


def test_console_script_reports_errors_on_stderr(closed_port_url: str) -> None:
    viridian = Path(sys.executable).parent / "viridian"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRIDIAN_")}
    done = subprocess.run(
        [str(viridian), "--url", closed_port_url, "--token", "t", "host", "show"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 7
    assert done.stderr.startswith("error: the viridian service at ")
    assert done.stdout == ""


def test_error_bodies_keep_code_details_and_message() -> None:
    body = {
        "code": "invalid_transition",
        "message": "cannot pause VM 'a': it is Off",
        "details": {"state": "Off", "allowed": ["start"], "message": "not a kwarg clash"},
    }
    error = error_from_body(body, 409)
    assert isinstance(error, InvalidTransition)
    assert (str(error), error.exit_code, error.details) == (body["message"], 4, body["details"])


def test_error_without_a_known_code_is_classed_by_http_status() -> None:
    assert isinstance(error_from_body({"code": "teapot", "message": "x"}, 404), NotFound)
    assert error_from_body({}, 502).exit_code == 6
