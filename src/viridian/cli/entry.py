"""The ``viridian`` console script: the disk commands' fast path, then the click CLI.

``viridian disk convert SRC DST [--type T]`` runs without importing click when it has the
plain shape (:func:`viridian.cli.disk_plain.fast_convert`; docs/architecture.md, "The disk
library"); every other command line — and that one whenever the fast path declines — is
the click CLI's (:func:`viridian.cli.main.main`), with its help, errors and exit codes.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Console-script entry point (``viridian``)."""
    if sys.argv[1:3] == ["disk", "convert"]:
        from viridian.cli.disk_plain import fast_convert

        try:
            if fast_convert(sys.argv[3:]):
                return
        except KeyboardInterrupt:  # as click shows it
            sys.stderr.write("\nAborted!\n")
            sys.exit(1)
    from viridian.cli.main import main as click_main

    click_main()
