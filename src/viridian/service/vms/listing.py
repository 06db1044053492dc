"""The ``GET /vms`` body at scale: each VM's JSON is kept until the VM changes
(docs/architecture.md, "Scale"; the body is the one docs/api.md, "VMs", describes).

Listing ten thousand VMs must not build and encode ten thousand vm objects on every
request. A VM at rest — Off or Saved, with no QEMU process — shows the same vm object
until one of these changes, which together form its *fingerprint*:

- its catalog record (every change of settings, name, state, status or flags replaces the
  frozen :class:`~viridian.service.catalog.VMRecord`, so identity is enough);
- its shown state;
- its ``view_revision``, which a capability bumps (``LiveVM.view_changed``) when what its
  ``describe`` shows for a VM at rest changes without a new record (the host's
  key-value pairs, for one).

Such a VM's encoded object is cached as interned pieces (one per ``"key":value``, the
settings split the same way): what ten thousand VMs have in common is held once. Any
other VM (running, paused, in a job) is encoded afresh on every request — those are
few, bounded by the host's memory and processors.
The bytes are exactly what the API would send for the same vm objects: compact JSON,
UTF-8, like FastAPI's ``JSONResponse``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from viridian.model.states import VMState

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM

AT_REST = frozenset({VMState.OFF, VMState.SAVED})
CHUNK_BYTES = 64 * 1024
SUMMARY_KEYS = ("id", "name", "state", "enabled_state", "processors", "memory_mb", "uptime_s",
                "status", "heartbeat")
"""The keys of a vm object in ``GET /vms?view=summary`` (what ``viridian vm list`` shows)."""
OWN_KEYS = frozenset({"id", "name", "folder", "created_at"})
"""Keys whose value no two VMs share (not worth interning)."""


def encode(obj: Any) -> bytes:
    """``obj`` as the API encodes a JSON body (compact, UTF-8, no NaN)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode()


Piece = bytes | tuple[bytes, tuple[bytes, ...]]
"""One ``"key":value`` of a vm object, encoded; ``settings`` as (``"settings":``, its
own ``"key":value`` pieces)."""


class _Encoded:
    """A vm object as interned pieces: equal pieces of different VMs are one bytes object
    (most of a vm object — state, processor, ports, integration services — is equal
    across VMs), so ten thousand cached objects cost little more than what differs."""

    __slots__ = ("keys", "pieces")

    def __init__(self, keys: tuple[str, ...], pieces: tuple[Piece, ...]) -> None:
        self.keys = keys
        self.pieces = pieces

    def whole(self) -> bytes:
        return b"{" + b",".join(_joined(piece) for piece in self.pieces) + b"}"

    def summary(self) -> bytes:
        by_key = dict(zip(self.keys, self.pieces, strict=True))
        return b"{" + b",".join(_joined(by_key[key]) if key in by_key
                                else _pair(key, None) for key in SUMMARY_KEYS) + b"}"


def _joined(piece: Piece) -> bytes:
    if isinstance(piece, bytes):
        return piece
    head, inner = piece
    return head + b"{" + b",".join(inner) + b"}"


def _pair(key: str, value: Any) -> bytes:
    return encode(key) + b":" + encode(value)


class VMListing:
    """Encoded vm objects of VMs at rest, by VM id (see the module docstring)."""

    __slots__ = ("_cache", "_interned")

    def __init__(self) -> None:
        self._cache: dict[str, tuple[object, VMState, int, _Encoded]] = {}
        self._interned: dict[Any, Any] = {}

    def body(self, vms: Sequence[LiveVM], summary: bool = False) -> bytes:
        """``{"vms": [vm, …]}`` for ``vms`` in the order given, each vm object whole or
        (``summary``) reduced to :data:`SUMMARY_KEYS`. VMs no longer given are forgotten."""
        return b"".join(self.chunks(vms, summary))

    def chunks(self, vms: Sequence[LiveVM], summary: bool = False) -> Iterator[bytes]:
        """:meth:`body` in pieces of about :data:`CHUNK_BYTES`: a list of ten thousand VMs
        is never one large buffer. The vm objects are taken now (a snapshot); only the
        joining happens as the pieces are consumed."""
        encoded = [self._encoded(vm) for vm in vms]  # immutable: safe to join later
        parts = (e.summary() if summary else e.whole() for e in encoded)
        if len(self._cache) > len(encoded):  # removed VMs: keep only what was just listed
            listed = {vm.record.id for vm in vms}
            self._cache = {k: v for k, v in self._cache.items() if k in listed}
        if len(self._interned) > 64 * (len(self._cache) + 16):
            self._intern_again()
        return _pieces(parts)

    def remember(self, vm: LiveVM, obj: dict[str, Any]) -> None:
        """Keep ``obj`` — ``vm.to_dict()`` just built by the caller — for the next list."""
        if vm.worker is None and vm.state in AT_REST:
            self._cache[vm.record.id] = (vm.record, vm.state, vm.view_revision,
                                         self._split(obj))

    def _encoded(self, vm: LiveVM) -> _Encoded:
        if vm.worker is not None or vm.state not in AT_REST:
            return self._split(vm.to_dict(), intern=False)
        entry = self._cache.get(vm.record.id)
        if entry is not None and entry[0] is vm.record and entry[1] is vm.state \
                and entry[2] == vm.view_revision:
            return entry[3]
        encoded = self._split(vm.to_dict())
        self._cache[vm.record.id] = (vm.record, vm.state, vm.view_revision, encoded)
        return encoded

    def _split(self, obj: dict[str, Any], intern: bool = True) -> _Encoded:
        keep = self._intern if intern else _same
        pieces: list[Piece] = []
        for key, value in obj.items():
            if key == "settings" and isinstance(value, dict):
                inner = tuple(_pair(k, v) if k == "name" else keep(_pair(k, v))
                              for k, v in value.items())
                pieces.append((keep(encode(key) + b":"), inner))
            else:
                pair = _pair(key, value)
                pieces.append(pair if key in OWN_KEYS else keep(pair))
        return _Encoded(keep(tuple(obj)), tuple(pieces))

    def _intern(self, value: Any) -> Any:
        return self._interned.setdefault(value, value)

    def _intern_again(self) -> None:
        """Forget interned pieces no cached VM uses any more (renamed or removed VMs)."""
        self._interned = {}
        for vm_id, (record, state, revision, encoded) in self._cache.items():
            self._cache[vm_id] = (record, state, revision, self._reinterned(encoded))

    def _reinterned(self, encoded: _Encoded) -> _Encoded:
        pieces = tuple(
            (p if key in OWN_KEYS else self._intern(p)) if isinstance(p, bytes)
            else (self._intern(p[0]), tuple(self._intern(i) for i in p[1]))
            for key, p in zip(encoded.keys, encoded.pieces, strict=True))
        return _Encoded(self._intern(encoded.keys), pieces)


def _same(value: Any) -> Any:
    return value


def _pieces(parts: Iterable[bytes]) -> Iterator[bytes]:
    """``{"vms":[`` ``parts`` joined by commas ``]}``, in pieces of about CHUNK_BYTES."""
    yield b'{"vms":['
    batch: list[bytes] = []
    size, first = 0, True
    for part in parts:
        batch.append(part)
        size += len(part) + 1
        if size >= CHUNK_BYTES:
            yield (b"" if first else b",") + b",".join(batch)
            batch, size, first = [], 0, False
    if batch:
        yield (b"" if first else b",") + b",".join(batch)
    yield b"]}"
