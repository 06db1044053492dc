"""Redfish event subscriptions kept in the catalog (``<data>/catalog.sqlite``, table
``redfish_subscriptions``): they outlive a service restart (DSP0266 §13.5 expects
subscriptions to persist; docs/architecture.md, "Redfish")."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from viridian.service.catalog import Catalog

_SCHEMA = """CREATE TABLE IF NOT EXISTS redfish_subscriptions (
    id TEXT PRIMARY KEY, destination TEXT NOT NULL, context TEXT NOT NULL);
DROP TABLE IF EXISTS redfish_accounts;"""  # Redfish accounts are viridian's users now


@dataclass(frozen=True)
class Subscription:
    id: str
    destination: str
    context: str


class SubscriptionStore:
    """Subscriptions by id, read from and written through to the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        catalog.execute_script(_SCHEMA)
        rows = catalog.read("SELECT id, destination, context FROM redfish_subscriptions "
                            "ORDER BY rowid")
        self._by_id = {r[0]: Subscription(r[0], r[1], r[2]) for r in rows}

    def all(self) -> list[Subscription]:
        return list(self._by_id.values())

    def get(self, sub_id: str) -> Subscription | None:
        return self._by_id.get(sub_id)

    def add(self, destination: str, context: str) -> Subscription:
        sub = Subscription(secrets.token_hex(4), destination, context)
        with self._catalog.transaction() as db:
            db.execute("INSERT INTO redfish_subscriptions VALUES (?, ?, ?)",
                       (sub.id, sub.destination, sub.context))
        self._by_id[sub.id] = sub
        return sub

    def remove(self, sub_id: str) -> None:
        with self._catalog.transaction() as db:
            db.execute("DELETE FROM redfish_subscriptions WHERE id=?", (sub_id,))
        self._by_id.pop(sub_id, None)
