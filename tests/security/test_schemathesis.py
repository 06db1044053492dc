"""Schemathesis over the service's own OpenAPI document, with the admin token, against a
real service (HTTPS on 10.77.0.1 in a network namespace of its own, so whatever the
generated requests create — switches, bridges — lives and dies with the namespace): no
generated request may get a 5xx answer. No guests: generated names mostly miss (404)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.qemu_processes import end_qemu_under
from tests.security.netns_service import PORT, NetnsService, network_namespace, service_in

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def service() -> Iterator[NetnsService]:
    if not SCHEMATHESIS.exists() and shutil.which("schemathesis") is None:
        pytest.fail("schemathesis is not installed: run `make deps` (pyproject dev extra)")
    with network_namespace() as namespace, service_in(namespace, port=PORT + 5) as running:
        try:
            yield running
        finally:
            running.stop()
            end_qemu_under(running.data_dir)


def test_no_generated_request_gets_a_server_error(service: NetnsService) -> None:
    cert = service.data_dir / "tls" / "cert.pem"
    result = service.run(
        [str(SCHEMATHESIS), "run", f"{service.url}/openapi.json",
         "--checks", "not_a_server_error", "-H", f"Authorization: Bearer {service.token}",
         "--tls-verify", str(cert), "--phases", "fuzzing", "--max-examples", "2",
         "--seed", "17", "--workers", "1", "--continue-on-failure",
         "--request-timeout", "60", "--suppress-health-check", "all"], timeout=900)
    summary = result.stdout[result.stdout.find("SUMMARY"):]
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Tested:" in summary and " passed" in summary, summary
