"""The guest kit's one place that runs host programs (apt-get, dpkg-deb, xorriso, ...)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from viridian.errors import HostError

__all__ = ["run"]


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    ok_status: tuple[int, ...] = (0,),
) -> str:
    """Run ``argv`` to completion and return its standard output (text).

    Raises HostError naming the command, its exit status and the tail of its standard
    error when it cannot be started or exits with a status not in ``ok_status``.
    """
    args = [str(a) for a in argv]
    try:
        done = subprocess.run(
            args,
            cwd=cwd,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    except OSError as err:
        raise HostError(f"guest kit: cannot run {args[0]}: {err.strerror}", command=args) from err
    if done.returncode not in ok_status:
        stderr = done.stderr.decode(errors="replace").strip()
        raise HostError(
            f"guest kit: {' '.join(args)} failed with exit status {done.returncode}: "
            f"{stderr[-2000:]}",
            command=args,
            exit_status=done.returncode,
        )
    return done.stdout.decode(errors="replace")
