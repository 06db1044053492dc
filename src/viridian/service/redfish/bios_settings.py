"""Pending BIOS settings (Redfish ``@Redfish.Settings``, DSP0266 "Settings resource"):
attributes PATCHed to ``Systems/{id}/Bios/Settings`` are kept in the catalog
(``redfish_bios_pending``) and applied through the one settings path when the VM next
starts from Off (docs/architecture.md, "Redfish")."""

from __future__ import annotations

import json
from typing import Any

from viridian.service.catalog import Catalog

_SCHEMA = """CREATE TABLE IF NOT EXISTS redfish_bios_pending (
    vm_id TEXT PRIMARY KEY, attributes TEXT NOT NULL);"""


class PendingBios:
    """VM id → BIOS attributes waiting for its next start; and what was applied last."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        catalog.execute_script(_SCHEMA)
        self.applied: dict[str, dict[str, Any]] = {}  # vm id → Settings Time + Messages

    def get(self, vm_id: str) -> dict[str, Any]:
        rows = self._catalog.read("SELECT attributes FROM redfish_bios_pending WHERE vm_id=?",
                                  (vm_id,))
        found: dict[str, Any] = json.loads(rows[0][0]) if rows else {}
        return found

    def add(self, vm_id: str, attributes: dict[str, Any]) -> None:
        """Merge ``attributes`` (already checked) into the VM's pending ones."""
        merged = {**self.get(vm_id), **attributes}
        with self._catalog.transaction() as db:
            db.execute("INSERT OR REPLACE INTO redfish_bios_pending VALUES (?, ?)",
                       (vm_id, json.dumps(merged)))

    def clear(self, vm_id: str) -> None:
        with self._catalog.transaction() as db:
            db.execute("DELETE FROM redfish_bios_pending WHERE vm_id=?", (vm_id,))
