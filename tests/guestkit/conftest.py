"""The guest kit built once per session (a cache hit after the first run on a host), and
no QEMU left behind by any test of the kit, whatever way it ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.qemu_processes import end_qemu_under
from viridian.guestkit import GuestImages, build


@pytest.fixture(scope="session")
def images() -> GuestImages:
    return build()


@pytest.fixture(autouse=True)
def _no_qemu_left_in(tmp_path: Path) -> Iterator[None]:
    """Kill every QEMU still using the test's ``tmp_path`` when the test ends."""
    try:
        yield
    finally:
        end_qemu_under(tmp_path)
