"""Where viridian keeps its state and how clients find the service, by default.

The data folder holds the catalog (``catalog.sqlite``), the admin token (``token``, mode
0600), one folder per VM under ``vms/`` and the runtime folders of running VMs under
``run/``. ``VIRIDIAN_DATA_DIR`` overrides the default for both service and CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
TOKEN_FILE_NAME = "token"
SERVICE_RECORD_NAME = "service.json"  # the local service's address and pid, in the data folder
API_PREFIX = "/api/v1"


def default_data_dir() -> Path:
    """``$VIRIDIAN_DATA_DIR``, else /var/lib/viridian for root, else ~/.local/share/viridian."""
    explicit = os.environ.get("VIRIDIAN_DATA_DIR")
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/var/lib/viridian")
    return Path.home() / ".local" / "share" / "viridian"


def token_path(data_dir: Path) -> Path:
    return data_dir / TOKEN_FILE_NAME
