"""The guest kit built once per session (a cache hit after the first run on a host)."""

from __future__ import annotations

import pytest

from viridian.guestkit import GuestImages, build


@pytest.fixture(scope="session")
def images() -> GuestImages:
    return build()
