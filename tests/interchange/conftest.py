from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def guest_iso() -> Path:
    """The guest kit's bootable ISO (built once, cached)."""
    from viridian.guestkit import build

    return build().iso
