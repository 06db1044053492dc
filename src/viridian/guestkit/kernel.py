"""Debian's kernel for the guests, taken from ``linux-image-amd64`` without installing it.

The metapackage's candidate version names the versioned image package it depends on
(``linux-image-6.1.0-NN-amd64``); that package is fetched with ``apt-get download`` into
a cache folder, unpacked with ``dpkg-deb -x`` into a scratch root, indexed with
``depmod -b`` and asked for module dependencies with ``modprobe -d ROOT --show-depends``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from viridian.errors import HostError
from viridian.guestkit.commands import run

__all__ = [
    "GUEST_MODULES",
    "KernelPackage",
    "candidate_kernel",
    "copy_modules",
    "download_kernel",
    "kernel_image",
    "module_load_order",
    "parse_apt_show",
    "unpack_kernel",
]

METAPACKAGE = "linux-image-amd64"

# Drivers the guests need for Hyper-V Gen1-like hardware on QEMU, in load order: SCSI
# upper drivers first so disks bind as soon as a host adapter finds them.
GUEST_MODULES: tuple[str, ...] = (
    "scsi_mod",
    "sd_mod",
    "sr_mod",
    "cdrom",
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "virtio_net",
    "virtio_console",
    "virtio_balloon",
    "libata",
    "ata_piix",
    "ata_generic",
    "tulip",
    "floppy",
    "evdev",
    "button",
    "isofs",  # cloud-init NoCloud seeds (ISO 9660, label cidata)
)

# Files consulted to pick the candidate: when none changed, the last answer still holds.
_APT_STATE_GLOBS = (
    "/var/lib/apt/lists/*Packages*",
    "/var/lib/dpkg/status",
    "/etc/apt/sources.list",
    "/etc/apt/sources.list.d/*",
    "/etc/apt/preferences",
    "/etc/apt/preferences.d/*",
)


@dataclass(frozen=True)
class KernelPackage:
    """The versioned kernel image package the metapackage's candidate depends on."""

    name: str  # linux-image-6.1.0-56-amd64
    version: str  # 6.1.192-2
    metapackage_version: str

    @property
    def release(self) -> str:
        """The kernel release (``uname -r`` in the guest), e.g. ``6.1.0-56-amd64``."""
        return self.name.removeprefix("linux-image-")

    @property
    def deb_name(self) -> str:
        """The file name ``apt-get download`` gives the package (epoch colon quoted)."""
        return f"{self.name}_{quote(self.version, safe='')}_amd64.deb"


def parse_apt_show(text: str) -> KernelPackage | None:
    """KernelPackage from ``apt-cache show --no-all-versions linux-image-amd64`` output.

    None when the text names no candidate (no package lists yet).
    """
    version = re.search(r"^Version: (\S+)$", text, re.M)
    depends = re.search(r"^Depends: .*?(linux-image-[0-9][^\s,(]*)\s*\(= ([^)]+)\)", text, re.M)
    if not version or not depends:
        return None
    return KernelPackage(depends.group(1), depends.group(2).strip(), version.group(1))


def _apt_state_stamp() -> str:
    digest = hashlib.sha256()
    for pattern in _APT_STATE_GLOBS:
        for path in sorted(Path("/").glob(pattern.lstrip("/"))):
            try:
                st = path.stat()
            except OSError:
                continue
            digest.update(f"{path}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
    return digest.hexdigest()


def _query_candidate() -> KernelPackage | None:
    try:
        text = run(["apt-cache", "show", "--no-all-versions", METAPACKAGE])
    except HostError:
        return None
    return parse_apt_show(text)


def candidate_kernel(
    cache_dir: Path, progress: Callable[[str], None], refresh: bool = False
) -> KernelPackage:
    """The kernel package to use, remembered in ``cache_dir`` while apt's state is unchanged.

    With ``refresh`` (or when apt knows no candidate) runs ``apt-get update`` first.
    Raises HostError when apt still knows no candidate for linux-image-amd64.
    """
    memo = cache_dir / "kernel-candidate.json"
    if not refresh:
        stamp = _apt_state_stamp()
        try:
            saved = json.loads(memo.read_text())
            if saved.get("stamp") == stamp:
                return KernelPackage(**saved["package"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        found = _query_candidate()
        if found is not None:
            _remember(memo, stamp, found)
            return found
    progress("apt-get update (to find linux-image-amd64)")
    run(["apt-get", "update", "-qq"])
    found = _query_candidate()
    if found is None:
        raise HostError(
            f"guest kit: apt knows no candidate for {METAPACKAGE} even after apt-get update; "
            "check /etc/apt/sources.list (Debian 12 main is needed)"
        )
    _remember(memo, _apt_state_stamp(), found)
    return found


def _remember(memo: Path, stamp: str, package: KernelPackage) -> None:
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(".tmp")
    tmp.write_text(json.dumps({"stamp": stamp, "package": asdict(package)}))
    tmp.replace(memo)


def download_kernel(package: KernelPackage, deb_dir: Path, progress: Callable[[str], None]) -> Path:
    """The package's .deb in ``deb_dir``, downloaded unless already there.

    Older kernel .debs in ``deb_dir`` are deleted. Raises HostError when apt-get download
    fails (e.g. the mirror no longer has this version: run apt-get update and retry).
    """
    deb_dir.mkdir(parents=True, exist_ok=True)
    target = deb_dir / package.deb_name
    if target.exists():
        return target
    progress(f"downloading {package.name} {package.version}")
    with tempfile.TemporaryDirectory(dir=deb_dir) as scratch:
        run(["apt-get", "download", f"{package.name}={package.version}"], cwd=Path(scratch))
        debs = list(Path(scratch).glob("*.deb"))
        if len(debs) != 1:
            raise HostError(f"guest kit: apt-get download left {len(debs)} files, expected 1")
        debs[0].replace(target)
    for old in deb_dir.glob("linux-image-*.deb"):
        if old != target:
            old.unlink(missing_ok=True)
    return target


def unpack_kernel(deb: Path, root: Path, release: str) -> None:
    """Unpack ``deb`` into ``root`` and build its module index (modules.dep)."""
    root.mkdir(parents=True, exist_ok=True)
    run(["dpkg-deb", "-x", deb, root])
    run(["depmod", "-b", root, release])


def kernel_image(root: Path, release: str) -> Path:
    """The unpacked ``vmlinuz``; raises HostError when the package had none."""
    image = root / "boot" / f"vmlinuz-{release}"
    if not image.is_file():
        raise HostError(f"guest kit: {image} missing from the kernel package")
    return image


def module_load_order(root: Path, release: str, names: Iterable[str]) -> list[Path]:
    """Module files for ``names`` and their dependencies, each once, dependencies first.

    Raises HostError naming a module the kernel package does not have. Built-in
    modules (no insmod line) contribute nothing.
    """
    order: list[Path] = []
    for name in names:
        out = run(["modprobe", "-d", root, "-S", release, "--show-depends", name])
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "insmod":
                path = Path(fields[1])
                if path not in order:
                    order.append(path)
    return order


def copy_modules(modules: Iterable[Path], kernel_root: Path, release: str, dest_root: Path) -> None:
    """Copy ``modules`` (and the module index files) into ``dest_root`` and re-index it."""
    src_base = kernel_root / "lib" / "modules" / release
    dst_base = dest_root / "lib" / "modules" / release
    for module in modules:
        target = dst_base / module.relative_to(src_base)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(module, target)
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (src_base / name).exists():
            shutil.copyfile(src_base / name, dst_base / name)
    run(["depmod", "-b", dest_root, release])
