"""Boot source overrides kept in the catalog (``redfish_boot_overrides``): a ``Once`` or
``Continuous`` override set through Redfish outlives a service restart
(docs/architecture.md, "Redfish")."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from viridian.redfish.boot import BootOverride
from viridian.service.catalog import Catalog

_SCHEMA = """CREATE TABLE IF NOT EXISTS redfish_boot_overrides (
    vm_id TEXT PRIMARY KEY, enabled TEXT NOT NULL, target TEXT NOT NULL);"""


class BootOverrides(MutableMapping[str, BootOverride]):
    """VM id → its override; reads from memory, writes through to the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        catalog.execute_script(_SCHEMA)
        self._by_id = {r[0]: BootOverride(r[1], r[2]) for r in catalog.read(
            "SELECT vm_id, enabled, target FROM redfish_boot_overrides")}

    def __getitem__(self, vm_id: str) -> BootOverride:
        return self._by_id[vm_id]

    def __setitem__(self, vm_id: str, override: BootOverride) -> None:
        with self._catalog.transaction() as db:
            db.execute("INSERT OR REPLACE INTO redfish_boot_overrides VALUES (?, ?, ?)",
                       (vm_id, override.enabled, override.target))
        self._by_id[vm_id] = override

    def __delitem__(self, vm_id: str) -> None:
        with self._catalog.transaction() as db:
            db.execute("DELETE FROM redfish_boot_overrides WHERE vm_id=?", (vm_id,))
        del self._by_id[vm_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)
