"""Where DMTF's DSP8010 CSDL schemas are on this machine: the project's shared folder beside
the checkout (``../shared/redfish/csdl``), or ``VIRIDIAN_REDFISH_CSDL`` when a checkout lives
elsewhere (CI clones into other folders); ``/work/shared`` is the shared folder's home here."""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = (
    Path(__file__).resolve().parents[3] / "shared" / "redfish" / "csdl",
    Path("/work/shared/redfish/csdl"),
)


def csdl_folder() -> Path:
    """The first folder holding ComputerSystem_v1.xml; the first candidate if none does
    (tests then fail naming it, never pass vacuously)."""
    override = os.environ.get("VIRIDIAN_REDFISH_CSDL")
    candidates = (Path(override),) if override else _CANDIDATES
    for folder in candidates:
        if (folder / "ComputerSystem_v1.xml").is_file():
            return folder
    return candidates[0]


SCHEMAS = csdl_folder()
