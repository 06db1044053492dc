from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.harness import Service, running_service


@pytest.fixture(scope="session")
def guest_iso() -> Path:
    from viridian.guestkit import build

    return build().iso


@pytest.fixture
def service() -> Iterator[Service]:
    with running_service() as svc:
        yield svc


@pytest.fixture
def api(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client
