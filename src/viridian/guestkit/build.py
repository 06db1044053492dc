"""Building the guest kit into its cache, at most once per set of inputs.

Cache layout (``output_dir``)::

    lock                      flock(2) held by the one process building
    cache/debs/*.deb          the downloaded kernel package
    cache/kernel-candidate.json
    builds/<version>/         one finished build (renamed into place atomically)
        vmlinuz initrd.img guest.iso guest.raw guest.vhd manifest.json
    builds/tmp-*/             a build in progress (removed when found stale)

A cache hit only stats files, runs one ``dpkg-query`` and hashes the kit's sources;
a miss takes the lock, re-checks (another process may just have built the same
version), builds into ``builds/tmp-*`` and renames it to ``builds/<version>``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from viridian import config
from viridian.errors import HostError
from viridian.guestkit import disk, initramfs, iso, kernel
from viridian.guestkit.bootconfig import kernel_command_line
from viridian.guestkit.cachekey import BuildInputs, cache_key, digest_files
from viridian.guestkit.commands import run

__all__ = ["GuestImages", "build", "default_output_dir"]

Progress = Callable[[str], None]

HOST_PACKAGES = (
    "busybox-static",
    "qemu-guest-agent",
    "libc6",
    "libglib2.0-0",
    "libudev1",
    "libnuma1",
    "liburing2",
    "libpcre2-8-0",
    "isolinux",
    "syslinux",
    "syslinux-common",
    "xorriso",
    "mtools",
    "dosfstools",
    "fdisk",
    "qemu-utils",
)
KEEP_BUILDS = 3  # finished builds kept; older ones may still back a VM's DVD drive
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class GuestImages:
    """One finished build. All paths are inside ``directory`` and shared by every user.

    ``iso`` may be attached read-only to any number of VMs. ``vhd`` and ``raw`` are
    templates: copy them before attaching them writable (QEMU locks images, and the
    guest may write). ``cmdline`` is the kernel command line the ISO and disk boot with.
    """

    version: str
    directory: Path
    iso: Path
    vhd: Path
    raw: Path
    kernel: Path
    initrd: Path
    kernel_release: str
    cmdline: str

    def direct_boot_args(self, extra_params: Sequence[str] = ()) -> list[str]:
        """QEMU arguments booting ``kernel`` + ``initrd`` with extra kernel parameters."""
        append = kernel_command_line(extra_params)
        return ["-kernel", str(self.kernel), "-initrd", str(self.initrd), "-append", append]


def default_output_dir() -> Path:
    """``$VIRIDIAN_GUESTKIT_DIR``, else ``<data dir>/guestkit``."""
    explicit = os.environ.get("VIRIDIAN_GUESTKIT_DIR")
    return Path(explicit) if explicit else config.default_data_dir() / "guestkit"


def _no_progress(_message: str) -> None:
    pass


def build(output_dir: Path | None = None, progress: Progress | None = None) -> GuestImages:
    """The guest images for the host's current inputs, built only when not cached.

    ``progress`` receives one human-readable line per step of a real build. Safe to call
    from several processes at once. Raises HostError when a tool or package is missing,
    apt cannot provide the kernel, or a build step fails; nothing half-built is left in
    ``builds/``.
    """
    out = output_dir or default_output_dir()
    try:
        return _build(out, progress or _no_progress)
    except OSError as err:
        raise HostError(f"guest kit: cannot build in {out}: {err}", output_dir=str(out)) from err


def _build(out: Path, say: Progress) -> GuestImages:
    inputs = _collect_inputs(out, say)
    found = _finished(out, cache_key(inputs))
    if found is not None:
        return found
    with _build_lock(out, say):
        _remove_stale_temporaries(out)
        found = _finished(out, cache_key(inputs))  # built by another process meanwhile?
        if found is not None:
            return found
        deb, inputs = _fetch_kernel(out, inputs, say)
        found = _finished(out, cache_key(inputs))  # apt-get update may lead to a cached one
        if found is not None:
            return found
        images = _build_new(out, inputs, deb, say)
        _prune(out, keep=images.version)
    return images


def _host_package_versions() -> dict[str, str]:
    text = run(
        ["dpkg-query", "-W", "-f", "${Package}=${Version}\\n", *HOST_PACKAGES],
        ok_status=(0, 1),  # 1: some package is not installed; the build step will say which
    )
    versions = dict.fromkeys(HOST_PACKAGES, "")
    for line in text.splitlines():
        name, _, version = line.partition("=")
        versions[name.split(":")[0]] = version
    return versions


def _source_digest() -> str:
    base = Path(__file__).parent
    files = [*base.glob("*.py"), *(p for p in (base / "files").iterdir() if p.is_file())]
    return digest_files(files, base)


def _collect_inputs(out: Path, say: Progress, refresh: bool = False) -> BuildInputs:
    package = kernel.candidate_kernel(out / "cache", say, refresh=refresh)
    return BuildInputs(
        kernel_package=package.name,
        kernel_version=package.version,
        host_packages=_host_package_versions(),
        sources=_source_digest(),
        converter=disk.converter_id(),
    )


def _images(directory: Path, version: str, release: str) -> GuestImages:
    return GuestImages(
        version=version,
        directory=directory,
        iso=directory / "guest.iso",
        vhd=directory / "guest.vhd",
        raw=directory / "guest.raw",
        kernel=directory / "vmlinuz",
        initrd=directory / "initrd.img",
        kernel_release=release,
        cmdline=kernel_command_line(),
    )


def _finished(out: Path, version: str) -> GuestImages | None:
    directory = out / "builds" / version
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        images = _images(directory, version, manifest["kernel_release"])
    except (OSError, ValueError, KeyError):
        return None
    files = (images.iso, images.vhd, images.raw, images.kernel, images.initrd)
    return images if all(f.is_file() for f in files) else None


@contextmanager
def _build_lock(out: Path, say: Progress) -> Iterator[None]:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another guest kit build to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_temporaries(out: Path) -> None:
    """Only the lock holder builds, so any temporary build folder is left from a crash."""
    for stale in (out / "builds").glob("tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _fetch_kernel(out: Path, inputs: BuildInputs, say: Progress) -> tuple[Path, BuildInputs]:
    """The kernel .deb; on a failed download, apt-get update, new inputs, one more try."""
    package = kernel.candidate_kernel(out / "cache", say)
    try:
        return kernel.download_kernel(package, out / "cache" / "debs", say), inputs
    except HostError:
        inputs = _collect_inputs(out, say, refresh=True)
        package = kernel.candidate_kernel(out / "cache", say)
        return kernel.download_kernel(package, out / "cache" / "debs", say), inputs


def _build_new(out: Path, inputs: BuildInputs, deb: Path, say: Progress) -> GuestImages:
    version = cache_key(inputs)
    builds = out / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix="tmp-", dir=builds))
    try:
        result = temp / "result"
        result.mkdir()
        _make_images(inputs, deb, temp / "work", result, say)
        manifest = {
            "version": version,
            "kernel_release": inputs.kernel_release,
            "inputs": asdict(inputs),
        }
        (result / MANIFEST).write_text(json.dumps(manifest, indent=2, default=dict) + "\n")
        final = builds / version
        shutil.rmtree(final, ignore_errors=True)  # an incomplete earlier build (files deleted)
        result.rename(final)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    say(f"guest kit {version} ready in {final}")
    return _images(final, version, inputs.kernel_release)


def _make_images(inputs: BuildInputs, deb: Path, work: Path, result: Path, say: Progress) -> None:
    release = inputs.kernel_release
    kernel_root = work / "kernel"
    say(f"unpacking {deb.name}")
    kernel.unpack_kernel(deb, kernel_root, release)
    modules = kernel.module_load_order(kernel_root, release, kernel.GUEST_MODULES)
    tree = work / "initramfs"
    say(f"assembling the initramfs ({len(modules)} kernel modules, busybox, qemu-ga)")
    kernel.copy_modules(modules, kernel_root, release, tree)
    guest_paths = ["/" + m.relative_to(kernel_root).as_posix() for m in modules]
    initramfs.assemble_tree(tree, guest_paths)
    vmlinuz, initrd = result / "vmlinuz", result / "initrd.img"
    shutil.copyfile(kernel.kernel_image(kernel_root, release), vmlinuz)
    initramfs.write_initramfs(tree, initrd)
    say("writing the ISO (isolinux)")
    iso.build_iso(vmlinuz, initrd, work / "iso", result / "guest.iso")
    say("writing the disk image (syslinux) and its dynamic VHD")
    (work / "disk").mkdir()
    disk.build_raw_disk(vmlinuz, initrd, work / "disk", result / "guest.raw")
    disk._raw_to_dynamic_vhd(result / "guest.raw", result / "guest.vhd")


def _prune(out: Path, keep: str) -> None:
    """Delete all but the KEEP_BUILDS most recent finished builds (never ``keep``)."""
    finished = [d for d in (out / "builds").iterdir() if (d / MANIFEST).exists()]
    finished.sort(key=lambda d: (d / MANIFEST).stat().st_mtime, reverse=True)
    for old in finished[KEEP_BUILDS:]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
