"""``viridian disk …``: Hyper-V's disk wizard on image files (no service needed).

When the local service runs, an operation that changes a file the service knows (a VM's
drive, a checkpoint's base or overlay, a saved state) goes through it instead
(:mod:`viridian.cli.disk_service`): the service refuses what would break a VM or a
checkpoint and names them; its errors exit with the same table's codes.

Every DiskError is turned into one line on stderr here, at the one boundary between the
library and the terminal, and exits with the error's own ``exit_code`` — the same code
the error table in docs/api.md gives it on every path (bad argument or corrupt disk 2,
missing file 3, in use / exists / no space 4, host I/O failure 6); usage errors exit 2.
Sizes follow the CLI's one rule (:mod:`viridian.cli.sizes`: a bare number is MB).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from viridian.cli.disk_plain import (
    FLOPPY_SUFFIX,
    SECTOR,
    VHD_SUFFIX,
    VHDX_DEFAULT_BLOCK,
    is_vhdx,
    progress_bar,
    require_dst_suffix,
    require_suffix,
)
from viridian.cli.disk_service import absolute, run_on_service, service_for
from viridian.cli.sizes import SIZE, format_size, size_help
from viridian.disks.errors import CorruptDisk, DiskError

if TYPE_CHECKING:  # each command imports the library part it runs (start-up cost)
    from viridian.disks.check import CheckReport
    from viridian.disks.inspect import DiskInfo

class DiskFailure(click.ClickException):
    """A library error shown as one line, exiting with the error's table exit code."""

    def __init__(self, err: DiskError) -> None:
        super().__init__(str(err))
        # click types exit_code as a ClassVar, but Command.main reads it from the instance.
        self.exit_code = err.exit_code  # type: ignore[misc]


class DiskGroup(click.Group):
    """A click group that shows library errors as one clear line with their exit code.

    An ``OSError`` the library did not foresee is a host failure (exit 6, as
    ``DiskError`` itself), never a traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DiskError as err:
            raise DiskFailure(err) from err
        except OSError as err:
            raise DiskFailure(DiskError(f"host I/O error: {err}")) from err


def created_text(kind: str, path: Path, requested: int, size: int) -> str:
    """The success line of ``disk new``: the real size, and the rounding when there was one."""
    text = f"created {kind} disk {path} ({format_size(size)})"
    if size != requested:
        text += f"; {format_size(requested)} requested, rounded up to whole {SECTOR}-byte sectors"
    return text


@click.group("disk", cls=DiskGroup)
def disk_group() -> None:
    """Create, inspect, convert, capture, compact, expand, merge and check VHD and VHDX
    disks."""


@disk_group.command("new")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--size",
    type=SIZE,
    help=size_help("Virtual size of a fixed or dynamic disk, rounded up to 512 bytes")
    + " Required unless --parent or --floppy.",
)
@click.option(
    "--type",
    "disk_type",
    type=click.Choice(["dynamic", "fixed"]),
    default="dynamic",
    show_default=True,
)
@click.option(
    "--block-size",
    type=SIZE,
    help=size_help(
        "Block size of a dynamic disk (a power of two, 512B to 256MB)", "2MB", "512KB, 2MB, 32MB"
    ),
)
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
    empty virtual floppy with --floppy. PATH must end in .vhd, .vhdx (.avhdx for a
    differencing VHDX) or .vfd for a floppy. A VHDX's default block size is 32 MB."""
    from viridian.disks import (
        DEFAULT_BLOCK_SIZE,
        new_differencing,
        new_dynamic,
        new_fixed,
        new_vhdx_dynamic,
        new_vhdx_fixed,
    )

    require_suffix(path, FLOPPY_SUFFIX if floppy else VHD_SUFFIX,
                   "a virtual floppy" if floppy else "a VHD")  # fmt: skip
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
        (new_vhdx_fixed if is_vhdx(path) else new_fixed)(path, size)
    elif is_vhdx(path):
        new_vhdx_dynamic(path, size, block_size or VHDX_DEFAULT_BLOCK)
    else:
        new_dynamic(path, size, block_size or DEFAULT_BLOCK_SIZE)
    click.echo(created_text(disk_type, path, size, -(-size // SECTOR) * SECTOR))


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
    from viridian.disks import inspect

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
    type=click.Choice(["fixed", "dynamic", "raw", "qcow2"]),
    default="dynamic",
    show_default=True,
)
@click.pass_context
def convert_cmd(ctx: click.Context, src: Path, dst: Path, target: str) -> None:
    """Copy SRC (raw, VHD, VHDX, VMDK or qcow2; a differencing chain is flattened) into
    the new file DST.

    DST must end in .vhd for a fixed or dynamic VHD, .vhdx for a VHDX, .qcow2 for qcow2; a
    fixed disk is allocated in full. A VMDK may be monolithic, split (twoGbMaxExtent) or
    streamOptimized; its extents must be in its own folder."""
    require_dst_suffix(dst, target)
    service = service_for(ctx, [src, dst])
    if service is not None:
        run_on_service(service, "convert",
                       {"src": str(absolute(src)), "dst": str(absolute(dst)), "type": target})
    else:
        from viridian.disks import convert

        with progress_bar("converting") as progress:
            convert(src, dst, target, progress=progress)
    click.echo(f"converted {src} to {target} {dst}")


@disk_group.command("capture")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
def capture_cmd(src: Path, dst: Path) -> None:
    """Copy the block device SRC (P2V; or a raw image file) into the new dynamic disk DST
    (*.vhdx or *.vhd), skipping space its ext2/3/4 file system does not use.

    SRC must not be mounted read-write. Runs here, not in the service (reading a device
    needs this host's root)."""
    from viridian.disks.capture import capture

    with progress_bar("capturing") as progress:
        result = capture(src, dst, progress=progress)
    how = {"ext": "ext file system: used blocks", "seek-data": "data ranges",
           "whole": "whole device, zero blocks skipped"}[result.method]
    click.echo(f"captured {src} ({format_size(result.size)}; read {format_size(result.read_bytes)}"
               f", {how}) to {dst}")


@disk_group.command("compact")
@click.argument("path", type=click.Path(path_type=Path))
@click.pass_context
def compact_cmd(ctx: click.Context, path: Path) -> None:
    """Give back the space of all-zero blocks of a dynamic or differencing disk."""
    from viridian.disks import CompactResult, compact

    service = service_for(ctx, [path])
    if service is not None:
        result = CompactResult(**run_on_service(service, "compact", {"path": str(absolute(path))}))
    else:
        with progress_bar("compacting") as progress:
            result = compact(path, progress)
    click.echo(
        f"compacted {path}: {result.blocks_freed} blocks freed, "
        f"{result.file_size_before} -> {result.file_size_after} bytes"
    )


@disk_group.command("expand")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--size",
    type=SIZE,
    required=True,
    help=size_help("New virtual size, rounded up to 512 bytes") + " Required.",
)
@click.pass_context
def expand_cmd(ctx: click.Context, path: Path, size: int) -> None:
    """Grow a fixed or dynamic disk to SIZE (a fixed disk's growth is allocated)."""
    service = service_for(ctx, [path])
    if service is not None:
        run_on_service(service, "expand", {"path": str(absolute(path)), "size": size})
    else:
        from viridian.disks import expand

        expand(path, size)
    real = -(-size // SECTOR) * SECTOR
    click.echo(f"expanded {path} to {format_size(real)}")


@disk_group.command("merge")
@click.argument("child", type=click.Path(path_type=Path))
@click.option("--into-parent", is_flag=True, help="Write the changes into the parent.")
@click.option("--output", type=click.Path(path_type=Path), help="Write a new standalone disk.")
@click.pass_context
def merge_cmd(ctx: click.Context, child: Path, into_parent: bool, output: Path | None) -> None:
    """Merge the differencing disk CHILD into its parent or into a new disk."""
    if into_parent == (output is not None):
        raise click.UsageError("give exactly one of --into-parent or --output DST")
    if output is not None:
        require_dst_suffix(output, "dynamic")
    service = service_for(ctx, [child, output, _parent_path(child)])
    if service is not None:
        body = {"child": str(absolute(child)), "into_parent": into_parent,
                "output": str(absolute(output)) if output else None}
        target = Path(run_on_service(service, "merge", body)["path"])
    else:
        from viridian.disks import merge

        with progress_bar("merging") as progress:
            target = merge(child, into_parent=into_parent, output=output, progress=progress)
    done = "merged into parent" if into_parent else "merged into"
    click.echo(f"{done} {target}" + (f"; {child} was removed" if into_parent else ""))


@disk_group.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--repair", is_flag=True, help="Fix the problems that are safe to fix.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def check_cmd(ctx: click.Context, path: Path, repair: bool, as_json: bool) -> None:
    """Check footers, header, BAT and parent link.

    Exit code 0 when no error remains; 2 (a corrupt disk, as in the error table) when
    errors remain — after --repair, the errors it could not repair are listed again.
    A repair of a file the local service knows goes through the service."""
    service = service_for(ctx, [path]) if repair else None
    if service is not None:
        report = report_from_dict(
            run_on_service(service, "check", {"path": str(absolute(path)), "repair": True}))
    else:
        from viridian.disks import check

        report = check(path, repair=repair)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report.problems, report.repaired, report.remaining)
        click.echo("no errors found" if report.ok else "errors found")
    if not report.ok:
        raise SystemExit(CorruptDisk.exit_code)


def report_from_dict(data: dict[str, Any]) -> CheckReport:
    """The check report the service sent (``CheckReport.to_dict``) as the library's."""
    from viridian.disks.check import CheckReport, Problem

    return CheckReport(
        data["path"], [Problem(**p) for p in data["problems"]], list(data["repaired"]),
        [Problem(**p) for p in data["remaining"]])


def _parent_path(child: Path) -> Path | None:
    """The parent of a differencing ``child``, or None (the merge itself will say why)."""
    from viridian.disks import inspect

    try:
        parent = inspect(child).parent_path
    except (DiskError, OSError):
        return None
    return Path(parent) if parent else None


def _print_report(problems: list[Any], repaired: list[str], remaining: list[Any]) -> None:
    for p in problems:
        fix = " (repairable)" if p.repairable else ""
        click.echo(f"{p.severity}: [{p.code}] {p.message}{fix}")
    for line in repaired:
        click.echo(f"repaired: {line}")
    for p in remaining if repaired else []:
        if p.severity == "error":
            click.echo(f"not repaired: [{p.code}] {p.message}")
