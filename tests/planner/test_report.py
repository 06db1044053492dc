"""The HTML report: self-contained, and rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.cli.cli_harness import invoke
from tests.planner.png import decode

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "planner-example.yaml"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Chart colours from viridian.planner.report.COLORS (bars are filled with exactly these).
CPU_BLUE = (0x25, 0x63, 0xEB)
MEMORY_GREEN = (0x05, 0x96, 0x69)
IOPS_ORANGE = (0xD9, 0x77, 0x06)
DISK_PURPLE = (0x7C, 0x3A, 0xED)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "plan.html"
    result = invoke(["plan", str(EXAMPLE), "--report", str(path)])
    assert result.exit_code == 0, result.output
    assert f"report written to {path}" in result.output
    return path


def test_cli_prints_tables_and_recommendation() -> None:
    result = invoke(["plan", str(EXAMPLE)])
    assert result.exit_code == 0
    assert "entry-sata: DOES NOT FIT" in result.output
    assert "Recommendation: dual-socket-ssd: 2 hosts (1 + 1 spare), cost $23,400" in result.output


def test_cli_json() -> None:
    result = invoke(["plan", str(EXAMPLE), "--json"])
    data = json.loads(result.output)
    assert data["recommended"] == "dual-socket-ssd"
    seed = data["candidates"][0]
    assert (seed["name"], seed["fits"]) == ("entry-sata", False)
    assert "30 more drives needed" in seed["problems"][0]


def test_cli_bad_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workloads: [{name: a}]\nhosts: [{name: h}]\n")
    result = invoke(["plan", str(bad)])
    assert result.exit_code == 2
    assert result.output.startswith("error: missing key 'memory' in workloads[0] (workload 'a')")


def test_report_is_self_contained(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    # cost, drives vs IOPS, drive counts, and one utilisation chart per sized candidate (4)
    assert html.count("<svg") == 3 + 4
    for forbidden in ("<script", "src=", "href=", "@import", "url("):
        assert forbidden not in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/install-deps.sh)")
def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    png = tmp_path / "plan.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={png}",
            "--window-size=1200,1600",
            report.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = decode(png.read_bytes())
    assert (image.width, image.height) == (1200, 1600)
    colours = Counter(
        image.pixel(x, y) for y in range(0, image.height, 2) for x in range(0, image.width, 2)
    )
    white = colours[(255, 255, 255)]
    assert white < 0.95 * sum(colours.values())  # not blank
    # The cost chart (blue host / orange drive segments) and the drives-vs-IOPS and drive
    # count charts are in the first 1600 pixels: their bar colours cover real areas.
    assert colours[CPU_BLUE] > 500
    assert colours[IOPS_ORANGE] > 500
    assert colours[MEMORY_GREEN] > 200
    assert colours[DISK_PURPLE] > 200
