"""Progress reporting for long operations."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` with byte counts; ``done`` only grows."""


def no_progress(done: int, total: int) -> None:
    """The default: report nothing."""
