"""OVF manifests (DMTF DSP0243 §5.1): ``ALGO(file)= hexdigest`` lines, SHA-1 and SHA-256,
checked against the package's files (pure but for reading the files)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from viridian.errors import BadRequest

LINE = re.compile(r"^(SHA1|SHA256)\((.+)\)\s*=\s*([0-9a-fA-F]+)\s*$")
ALGORITHMS = {"SHA1": "sha1", "SHA256": "sha256"}


def parse_manifest(text: str, where: str) -> list[tuple[str, str, str]]:
    """``(algorithm, file, digest)`` for every line of the manifest ``text``.

    :raises BadRequest: a line that is not ``SHA1(file)= hex`` or ``SHA256(file)= hex``.
    """
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = LINE.match(line)
        if not match:
            raise BadRequest(f"{where} line {number} is not 'SHA1(file)= digest' or "
                             f"'SHA256(file)= digest': {line[:100]!r}; nothing was changed")
        algorithm, name, digest = match.groups()
        entries.append((algorithm, name, digest.lower()))
    return entries


def verify_manifest(manifest: Path) -> list[str]:
    """Check every file ``manifest`` lists (beside it); returns the files checked.

    :raises BadRequest: a listed file is missing, outside the package, or its digest
        differs (named with both digests).
    """
    checked = []
    for algorithm, name, digest in parse_manifest(manifest.read_text(encoding="utf-8"),
                                                  str(manifest)):
        if "/" in name or name.startswith("."):
            raise BadRequest(f"{manifest} lists {name!r}, which is not a file of the "
                             "package; nothing was changed")
        path = manifest.parent / name
        if not path.is_file():
            raise BadRequest(f"{manifest} lists {name}, which is not in the package; "
                             "nothing was changed")
        actual = _digest(path, ALGORITHMS[algorithm])
        if actual != digest:
            raise BadRequest(f"{name}: {algorithm} is {actual}, the manifest says {digest}; "
                             "the package is damaged; nothing was changed", file=name)
        checked.append(name)
    return checked


def _digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def manifest_text(folder: Path, names: list[str]) -> str:
    """The manifest (SHA-256, DSP0243 §5.1) of the files ``names`` in ``folder``."""
    return "".join(f"SHA256({name})= {_digest(folder / name, 'sha256')}\n" for name in names)
