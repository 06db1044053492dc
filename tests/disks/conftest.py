"""Fixtures for the disk tests."""

from __future__ import annotations

import pytest

from .helpers import MiB, make_pattern


@pytest.fixture
def pattern() -> bytearray:
    """A 21 MiB + 1.5 KiB sparse pattern (a partial last block)."""
    return make_pattern(21 * MiB + 1536, seed=7)
