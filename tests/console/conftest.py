"""Fixtures for the console tests: one real service and one headless Debian Chromium
(Playwright driving /usr/bin/chromium) shared by the whole module."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.harness import REPO, Service, running_service

CHROMIUM = os.environ.get("VIRIDIAN_CHROMIUM", "/usr/bin/chromium")
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"


@pytest.fixture(scope="module")
def console_service() -> Iterator[Service]:
    with running_service({"VIRIDIAN_COUNTER_INTERVAL_S": "1"}) as service:
        yield service


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def screenshot_dir() -> Iterator[Path]:
    """docs/screenshots when VIRIDIAN_WRITE_DOCS=1 (to refresh the committed pictures),
    else a temporary folder (the pictures are still taken: the code path stays tested)."""
    if os.environ.get("VIRIDIAN_WRITE_DOCS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        yield DOCS_SCREENSHOTS
        return
    folder = Path(tempfile.mkdtemp(prefix="vir-shots-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def guest_iso() -> Path:
    from viridian.guestkit import build

    return build().iso
