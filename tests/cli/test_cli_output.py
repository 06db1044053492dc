"""Pure formatting and the job progress display."""

from __future__ import annotations

import io

import pytest

from viridian.cli.output import JobProgress, format_table, format_uptime, progress_bar


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0, "0:00:00"), (59.9, "0:00:59"), (3723.5, "1:02:03"), (360000, "100:00:00")],
)
def test_format_uptime(seconds: float | None, text: str) -> None:
    assert format_uptime(seconds) == text


def test_format_table_aligns_columns_and_shows_missing_cells_as_dash() -> None:
    assert format_table(("A", "Long name"), [("x", None), ("yyyy", 3)]).splitlines() == [
        "A     Long name",
        "x     -",
        "yyyy  3",
    ]


def job(state: str, progress: int, message: str) -> dict[str, object]:
    return {
        "id": "j",
        "kind": "start",
        "vm": "web",
        "state": state,
        "progress": progress,
        "message": message,
    }


def test_progress_bar_fits_the_terminal_width() -> None:
    line = progress_bar(job("running", 50, "booting the guest"), 80)
    assert line == "start web [##########----------]  50% booting the guest"
    assert progress_bar(job("running", 50, "x" * 200), 40) == (
        "start web [##########----------]  50% x"
    )


def test_tty_progress_redraws_one_line_and_ends_it() -> None:
    stream = io.StringIO()
    show = JobProgress(stream, tty=True, width=80)
    show(job("running", 30, "starting QEMU"))
    show(job("completed", 100, "done"))
    assert stream.getvalue() == (
        "\r\x1b[Kstart web [######--------------]  30% starting QEMU"
        "\r\x1b[Kstart web [####################] 100% completed\n"
    )


def test_plain_progress_prints_a_line_only_when_something_changed() -> None:
    stream = io.StringIO()
    show = JobProgress(stream, tty=False)
    versions = (job("running", 30, "a"), job("running", 30, "a"), job("completed", 100, "done"))
    for version in versions:
        show(version)
    assert stream.getvalue() == "start web: running 30% - a\nstart web: completed 100%\n"
