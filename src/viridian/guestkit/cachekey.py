"""The guest kit's cache key: a pure function of everything a build depends on."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BuildInputs", "cache_key", "digest_files"]

KEY_FORMAT = 1  # bump when the key's recipe itself changes


@dataclass(frozen=True)
class BuildInputs:
    """What a build depends on; equal inputs give byte-for-byte equivalent guests.

    ``host_packages`` maps Debian package names (busybox-static, qemu-guest-agent,
    syslinux, libraries...) to their installed versions; ``sources`` is the digest of
    the guest kit's code and guest files (:func:`digest_files`); ``converter`` names the
    raw → VHD converter.
    """

    kernel_package: str
    kernel_version: str
    host_packages: Mapping[str, str] = field(default_factory=dict)
    sources: str = ""
    converter: str = ""

    @property
    def kernel_release(self) -> str:
        return self.kernel_package.removeprefix("linux-image-")


def cache_key(inputs: BuildInputs) -> str:
    """``<kernel release>-<12 hex digits>``, changing whenever any input changes."""
    lines = [
        f"format={KEY_FORMAT}",
        f"kernel={inputs.kernel_package}={inputs.kernel_version}",
        *(f"package={name}={ver}" for name, ver in sorted(inputs.host_packages.items())),
        f"sources={inputs.sources}",
        f"converter={inputs.converter}",
    ]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return f"{inputs.kernel_release}-{digest[:12]}"


def digest_files(files: Iterable[Path], base: Path) -> str:
    """SHA-256 over the names (relative to ``base``) and contents of ``files``, in name order."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(base).as_posix()):
        digest.update(path.relative_to(base).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
