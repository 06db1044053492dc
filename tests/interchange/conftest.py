from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def guest_iso() -> Path:
    """The guest kit's bootable ISO (built once, cached)."""
    from viridian.guestkit import build

    return build().iso


COT = "cot==2.2.1"
CACHE = Path.home() / ".cache" / "viridian-test-data" / "cot-2.2.1"


@pytest.fixture(scope="session")
def samples() -> Path:
    """COT/tests of the cot wheel (downloaded once into CACHE)."""
    folder = CACHE / "COT" / "tests"
    if not (folder / "vmware.ovf").is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                        str(CACHE), COT], check=True)
        wheel = next(CACHE.glob("cot-2.2.1-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith("COT/tests/") and not name.endswith(".py"):
                    archive.extract(name, CACHE)
    return folder
