"""Fixtures shared by the QEMU-layer tests that start real QEMUs and storage daemons."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.qemu_processes import end_qemu_under


@pytest.fixture
def folder() -> Iterator[Path]:
    """A short temporary folder (UNIX socket paths inside it must stay under 108 bytes);
    every QEMU and storage daemon still using it when the test ends — passed, failed or
    errored — is killed, then the folder is removed. A module may define its own."""
    with tempfile.TemporaryDirectory(prefix="vq-") as tmp:
        try:
            yield Path(tmp)
        finally:
            end_qemu_under(Path(tmp))
