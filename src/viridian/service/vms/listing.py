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
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from viridian.model.states import VMState

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM

AT_REST = frozenset({VMState.OFF, VMState.SAVED})
CHUNK_PIECES = 4096  # about 100 vm objects, some 150 KB
SUMMARY_KEYS = ("id", "name", "state", "enabled_state", "processors", "memory_mb", "uptime_s",
                "status", "heartbeat")
"""The keys of a vm object in ``GET /vms?view=summary`` (what ``viridian vm list`` shows)."""
OWN_KEYS = frozenset({"id", "name", "folder", "created_at"})
"""Keys whose value no two VMs share (not worth interning)."""


def encode(obj: Any) -> bytes:
    """``obj`` as the API encodes a JSON body (compact, UTF-8, no NaN)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode()


class _Encoded:
    """A vm object as a tuple of interned pieces that concatenate to its JSON (equal
    pieces of different VMs are one bytes object: most of a vm object — state,
    processor, ports, integration services — is equal across VMs), and the same for its
    summary. Joining happens once per streamed chunk, never per VM."""

    __slots__ = ("flat", "summary")

    def __init__(self, flat: tuple[bytes, ...], summary: tuple[bytes, ...]) -> None:
        self.flat = flat
        self.summary = summary


def _pair(key: str, value: Any) -> bytes:
    return encode(key) + b":" + encode(value)


class VMListing:
    """Encoded vm objects of VMs at rest, by VM id (see the module docstring)."""

    __slots__ = ("_cache", "_interned")

    def __init__(self) -> None:
        self._cache: dict[str, tuple[object, VMState, int, _Encoded]] = {}
        self._interned: dict[bytes, bytes] = {}

    def body(self, vms: Sequence[LiveVM], summary: bool = False) -> bytes:
        """``{"vms": [vm, …]}`` for ``vms`` in the order given, each vm object whole or
        (``summary``) reduced to :data:`SUMMARY_KEYS`. VMs no longer given are forgotten."""
        return b"".join(self.chunks(vms, summary))

    def chunks(self, vms: Sequence[LiveVM], summary: bool = False) -> Iterator[bytes]:
        """:meth:`body` in pieces of about :data:`CHUNK_PIECES` pieces: a list of ten
        thousand VMs is never one large buffer. The vm objects are taken now (a snapshot
        of immutable pieces); only the joining happens as the chunks are consumed."""
        encoded = [self._encoded(vm) for vm in vms]
        if len(self._cache) > len(encoded):  # removed VMs: keep only what was just listed
            listed = {vm.record.id for vm in vms}
            self._cache = {k: v for k, v in self._cache.items() if k in listed}
        if len(self._interned) > 64 * (len(self._cache) + 16):
            self._intern_again()
        return _pieces(e.summary if summary else e.flat for e in encoded)

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
        flat: list[bytes] = [b"{"]
        summary: list[bytes] = [b"{"]
        for index, (key, value) in enumerate(obj.items()):
            comma = b"," if index else b""
            if key == "settings" and isinstance(value, dict):
                flat.append(keep(comma + b'"settings":{'))
                flat.extend(_own_or_kept((b"," if i else b"") + _pair(k, v), k == "name", keep)
                            for i, (k, v) in enumerate(value.items()))
                flat.append(b"}")
                continue
            piece = _own_or_kept(comma + _pair(key, value), key in OWN_KEYS, keep)
            flat.append(piece)
            if key in SUMMARY_KEYS:
                summary.append(piece if len(summary) > 1 or not comma else piece[1:])
        for key in SUMMARY_KEYS:
            if key not in obj:
                summary.append(keep((b"," if len(summary) > 1 else b"") + _pair(key, None)))
        flat.append(b"}")
        summary.append(b"}")
        return _Encoded(tuple(flat), tuple(summary))

    def _intern(self, value: bytes) -> bytes:
        return self._interned.setdefault(value, value)

    def _intern_again(self) -> None:
        """Forget interned pieces no cached VM uses any more (renamed or removed VMs)."""
        self._interned = {}
        for vm_id, (record, state, revision, encoded) in self._cache.items():
            again = _Encoded(tuple(map(self._intern, encoded.flat)),
                             tuple(map(self._intern, encoded.summary)))
            self._cache[vm_id] = (record, state, revision, again)


def _own_or_kept(piece: bytes, own: bool, keep: Callable[[bytes], bytes]) -> bytes:
    return piece if own else keep(piece)


def _same(value: Any) -> Any:
    return value


def _pieces(objects: Iterable[tuple[bytes, ...]]) -> Iterator[bytes]:
    """``{"vms":[`` the objects (each a tuple of pieces) joined by commas ``]}``, in
    chunks of about CHUNK_PIECES pieces."""
    yield b'{"vms":['
    batch: list[bytes] = []
    first = True
    for pieces in objects:
        if not first:
            batch.append(b",")
        first = False
        batch.extend(pieces)
        if len(batch) >= CHUNK_PIECES:
            yield b"".join(batch)
            batch = []
    if batch:
        yield b"".join(batch)
    yield b"]}"
