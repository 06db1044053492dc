from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def guest_iso() -> Path:
    from viridian.guestkit import build

    return build().iso
