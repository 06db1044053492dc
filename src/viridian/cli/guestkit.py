"""``viridian guestkit build``: build (or find cached) the tiny test/demo guests.

Runs locally, not through the service: it only needs this host's Debian packages.
"""

from __future__ import annotations

from pathlib import Path

import click

from viridian import guestkit

__all__ = ["guestkit_group"]


@click.group("guestkit")
def guestkit_group() -> None:
    """Tiny real Linux guests made from this host's Debian packages."""


@guestkit_group.command("build")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache folder (default: $VIRIDIAN_GUESTKIT_DIR, else <data dir>/guestkit).",
)
def build(output: Path | None) -> None:
    """Build the guest ISO, VHD and kernel+initramfs, unless already cached.

    Progress goes to stderr; the finished files are listed on stdout.
    """
    images = guestkit.build(output, progress=lambda line: click.echo(line, err=True))
    rows = (
        ("version", images.version),
        ("iso", images.iso),
        ("vhd", images.vhd),
        ("raw", images.raw),
        ("kernel", images.kernel),
        ("initrd", images.initrd),
        ("cmdline", images.cmdline),
    )
    for name, value in rows:
        click.echo(f"{name:<8} {value}")
