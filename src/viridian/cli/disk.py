"""``viridian disk …``: Hyper-V's disk wizard on image files (no service needed).

Every DiskError is turned into one line on stderr and exit code 1 here, at the one
boundary between the library and the terminal; usage errors exit with 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from viridian.disks import (
    DEFAULT_BLOCK_SIZE,
    DiskError,
    DiskInfo,
    InvalidDiskArgument,
    check,
    compact,
    convert,
    expand,
    inspect,
    merge,
    new_differencing,
    new_dynamic,
    new_fixed,
    parse_size,
)

ProgressFn = Callable[[int, int], None]


class SizeParam(click.ParamType):  # type: ignore[type-arg]
    """A size such as 512M, 10G, 1.5GiB or 1048576 (binary units)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except InvalidDiskArgument as err:
            self.fail(str(err), param, ctx)


SIZE = SizeParam()


class DiskGroup(click.Group):
    """A click group that shows library errors as one clear line (exit code 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DiskError as err:
            raise click.ClickException(str(err)) from err


@click.group("disk", cls=DiskGroup)
def disk_group() -> None:
    """Create, inspect, convert, compact, expand, merge and check VHD disks."""


@contextmanager
def progress_bar(label: str) -> Iterator[ProgressFn]:
    """A one-line stderr bar fed by the library's ``progress(done, total)`` callback.

    Drawn only when stderr is a terminal, redrawn only when the percentage changes.
    """
    stream = sys.stderr
    shown = {"pct": -1}

    def update(done: int, total: int) -> None:
        pct = 100 * done // max(total, 1)
        if pct != shown["pct"] and stream.isatty():
            shown["pct"] = pct
            bar = "#" * (pct * 30 // 100)
            stream.write(f"\r{label} [{bar:<30}] {pct:3d}%")
            stream.flush()

    try:
        yield update
    finally:
        if shown["pct"] >= 0:
            stream.write("\n")


@disk_group.command("new")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--size", type=SIZE, help="Virtual size, e.g. 512M, 10G, 1.5GiB.")
@click.option(
    "--type",
    "disk_type",
    type=click.Choice(["dynamic", "fixed"]),
    default="dynamic",
    show_default=True,
)
@click.option("--block-size", type=SIZE, help="Block size of a dynamic disk (default 2M).")
@click.option(
    "--parent", type=click.Path(path_type=Path), help="Make a differencing disk of PARENT."
)
@click.option("--floppy", is_flag=True, help="An empty 1.44 MB virtual floppy (raw .vfd).")
@click.pass_context
def new_cmd(
    ctx: click.Context,
    path: Path,
    size: int | None,
    disk_type: str,
    block_size: int | None,
    parent: Path | None,
    floppy: bool,
) -> None:
    """Create a new disk: dynamic or fixed with --size, differencing with --parent, or an
    empty virtual floppy with --floppy."""
    if floppy:
        if size is not None or block_size is not None or parent is not None:
            raise click.UsageError(
                "--floppy cannot be combined with --size, --block-size or --parent"
            )
        _new_floppy(path)
        click.echo(f"created virtual floppy {path} ({FLOPPY_BYTES} bytes, 1.44 MB)")
        return
    if parent is not None:
        if size is not None or block_size is not None or _given(ctx, "disk_type"):
            raise click.UsageError(
                "--parent cannot be combined with --size, --type or --block-size"
            )
        new_differencing(path, parent)
        click.echo(f"created differencing disk {path} (parent {parent})")
        return
    if size is None:
        raise click.UsageError("--size is required (or --parent for a differencing disk)")
    if disk_type == "fixed":
        if block_size is not None:
            raise click.UsageError("--block-size applies to dynamic disks only")
        new_fixed(path, size)
    else:
        new_dynamic(path, size, block_size or DEFAULT_BLOCK_SIZE)
    click.echo(f"created {disk_type} disk {path} ({size} bytes)")


FLOPPY_BYTES = 1_474_560  # 80 cylinders x 2 heads x 18 sectors x 512 bytes


def _new_floppy(path: Path) -> None:
    """An empty (unformatted, all zeros) raw 1.44 MB floppy image; never overwrites."""
    try:
        with open(path, "xb") as image:
            image.truncate(FLOPPY_BYTES)
    except FileExistsError as err:
        raise click.ClickException(f"{path} already exists; nothing was changed") from err
    except OSError as err:
        raise click.ClickException(f"cannot create {path}: {err.strerror}") from err


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT


@disk_group.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print every field as JSON.")
def inspect_cmd(path: Path, as_json: bool) -> None:
    """Show type, sizes, blocks, geometry, identity, checksums and the parent chain."""
    info = inspect(path)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
        return
    _print_info(info, "")


def _print_info(info: DiskInfo, indent: str) -> None:
    for key, value in info.to_dict().items():
        if key != "chain" and value is not None:
            click.echo(f"{indent}{key.replace('_', ' ')}: {value}")
    for depth, parent in enumerate(info.chain, 1):
        click.echo(f"{indent}parent {depth}:")
        parent.chain = []
        _print_info(parent, indent + "  ")


@disk_group.command("convert")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--type",
    "target",
    type=click.Choice(["fixed", "dynamic", "raw"]),
    default="dynamic",
    show_default=True,
)
def convert_cmd(src: Path, dst: Path, target: str) -> None:
    """Copy SRC (raw or VHD; a differencing chain is flattened) into the new file DST."""
    with progress_bar("converting") as progress:
        convert(src, dst, target, progress=progress)
    click.echo(f"converted {src} to {target} {dst}")


@disk_group.command("compact")
@click.argument("path", type=click.Path(path_type=Path))
def compact_cmd(path: Path) -> None:
    """Give back the space of all-zero blocks of a dynamic or differencing disk."""
    with progress_bar("compacting") as progress:
        result = compact(path, progress)
    click.echo(
        f"compacted {path}: {result.blocks_freed} blocks freed, "
        f"{result.file_size_before} -> {result.file_size_after} bytes"
    )


@disk_group.command("expand")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--size", type=SIZE, required=True, help="New virtual size, e.g. 20G.")
def expand_cmd(path: Path, size: int) -> None:
    """Grow a fixed or dynamic disk to SIZE."""
    expand(path, size)
    click.echo(f"expanded {path} to {size} bytes")


@disk_group.command("merge")
@click.argument("child", type=click.Path(path_type=Path))
@click.option("--into-parent", is_flag=True, help="Write the changes into the parent.")
@click.option("--output", type=click.Path(path_type=Path), help="Write a new standalone disk.")
def merge_cmd(child: Path, into_parent: bool, output: Path | None) -> None:
    """Merge the differencing disk CHILD into its parent or into a new disk."""
    if into_parent == (output is not None):
        raise click.UsageError("give exactly one of --into-parent or --output DST")
    with progress_bar("merging") as progress:
        target = merge(child, into_parent=into_parent, output=output, progress=progress)
    done = "merged into parent" if into_parent else "merged into"
    click.echo(f"{done} {target}" + (f"; {child} was removed" if into_parent else ""))


@disk_group.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--repair", is_flag=True, help="Fix the problems that are safe to fix.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_cmd(path: Path, repair: bool, as_json: bool) -> None:
    """Check footers, header, BAT and parent link; exit code 1 when errors remain."""
    report = check(path, repair=repair)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for p in report.problems:
            fix = " (repairable)" if p.repairable else ""
            click.echo(f"{p.severity}: [{p.code}] {p.message}{fix}")
        for line in report.repaired:
            click.echo(f"repaired: {line}")
        click.echo("no errors found" if report.ok else "errors found")
    if not report.ok:
        raise SystemExit(1)
