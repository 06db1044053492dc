"""The audit log: one JSON line per state-changing request, login and denial, hash-chained
(docs/architecture.md, "Access"; docs/api.md, "Audit").

Each record carries ``prev`` (the previous record's ``hash``; 64 zeros for the first) and
``hash`` = SHA-256 of ``prev`` followed by the record's canonical JSON without ``hash``.
An edited, removed or reordered line breaks the chain at that line; a cut tail is found by
comparing the last record with the head the service keeps apart from the file (the access
store's ``audit_head``). The file is opened append-only (``O_APPEND``, mode 0600).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GENESIS", "AuditLog", "Verdict", "read_records", "verify_chain"]

GENESIS = "0" * 64
FIELDS = ("who", "realm", "source", "operation", "target", "result", "status", "job")


def record_hash(prev: str, record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev + canonical).encode()).hexdigest()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    bad_line: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "bad_line": self.bad_line,
                "reason": self.reason}


class AuditLog:
    """Appends chained records; ``head_store`` keeps (seq, hash) of the last one."""

    def __init__(self, path: Path, load_head: Callable[[], Any],
                 save_head: Callable[[dict[str, Any]], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.path, self._save_head, self._clock = path, save_head, clock
        self._lock = threading.Lock()
        head = load_head() or {"seq": 0, "hash": GENESIS}
        self._seq, self._hash = int(head["seq"]), str(head["hash"])
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(path, 0o600)
        self._fd = fd

    def append(self, **fields: Any) -> dict[str, Any]:
        """Add one record (keys of :data:`FIELDS`; others are kept too) and return it."""
        with self._lock:
            record: dict[str, Any] = {"seq": self._seq + 1, "time": round(self._clock(), 3)}
            record.update({k: fields.get(k) for k in FIELDS})
            record.update({k: v for k, v in fields.items() if k not in FIELDS})
            record["prev"] = self._hash
            record["hash"] = record_hash(self._hash, record)
            line = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
            os.write(self._fd, line.encode())
            self._seq, self._hash = record["seq"], record["hash"]
            self._save_head({"seq": self._seq, "hash": self._hash})
            return record

    @property
    def head(self) -> dict[str, Any]:
        return {"seq": self._seq, "hash": self._hash}

    def close(self) -> None:
        os.close(self._fd)


def read_records(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, raw line) of the log."""
    try:
        with open(path, encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                yield number, line.rstrip("\n")
    except FileNotFoundError:
        return


def verify_chain(lines: Iterator[tuple[int, str]], head: dict[str, Any] | None) -> Verdict:
    """Check every line's ``prev``/``hash`` and the last record against ``head``."""
    prev, count, seq = GENESIS, 0, 0
    for number, line in lines:
        try:
            record = json.loads(line)
            claimed = record["hash"]
        except (ValueError, KeyError, TypeError):
            return Verdict(False, count, number, f"line {number} is not an audit record")
        if record.get("prev") != prev or record_hash(prev, record) != claimed \
                or record.get("seq") != seq + 1:
            return Verdict(False, count, number,
                           f"line {number} was changed, removed or moved (its hash does not "
                           "follow from the line before)")
        prev, seq, count = claimed, record["seq"], count + 1
    if head is not None and (head.get("hash") != prev or head.get("seq") != seq):
        return Verdict(False, count, count + 1 if head.get("seq", 0) > seq else count,
                       f"the log ends at record {seq} but the service last wrote record "
                       f"{head.get('seq')}: records were cut or replaced")
    return Verdict(True, count)


def matches(record: dict[str, Any], since: float | None, user: str | None,
            vm: str | None) -> bool:
    """Whether ``record`` passes ``viridian audit``'s filters."""
    if since is not None and float(record.get("time", 0)) < since:
        return False
    if user is not None and record.get("who") != user:
        return False
    return vm is None or record.get("target") == f"vm:{vm}"
