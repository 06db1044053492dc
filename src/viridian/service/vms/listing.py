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

Such a VM's encoded object is cached as a short tuple that alternates *shared segments*
and *own pieces*: the ``"key":value`` pieces no two VMs share (id, names, folder,
creation time) are the VM's own; each run of other pieces between them is joined into
one segment, interned, so what ten thousand VMs have in common is held once and a VM
holds some ten references, not one per key (docs/architecture.md, "Scale"). Any
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
    """A vm object as a tuple of pieces that concatenate to its JSON, and the same for
    its summary. Each tuple alternates segments (even indices: interned, equal across
    VMs — state, processor, ports, integration services…) and the VM's own pieces (odd
    indices). Joining happens once per streamed chunk, never per VM. ``record``,
    ``state`` and ``revision`` are the fingerprint it was made from."""

    __slots__ = ("flat", "record", "revision", "state", "summary")

    def __init__(self, flat: tuple[bytes, ...], summary: tuple[bytes, ...],
                 fingerprint: tuple[object, VMState | None, int] = (None, None, 0)) -> None:
        self.flat = flat
        self.summary = summary
        self.record, self.state, self.revision = fingerprint


def _pair(key: str, value: Any) -> bytes:
    return encode(key) + b":" + encode(value)


class VMListing:
    """Encoded vm objects of VMs at rest, by VM id (see the module docstring)."""

    __slots__ = ("_cache", "_interned")

    def __init__(self) -> None:
        self._cache: dict[str, _Encoded] = {}
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
            self._cache[vm.record.id] = self._split(obj, _fingerprint(vm))

    def _encoded(self, vm: LiveVM) -> _Encoded:
        if vm.worker is not None or vm.state not in AT_REST:
            return self._split(vm.to_dict(), intern=False)
        entry = self._cache.get(vm.record.id)
        if entry is not None and entry.record is vm.record and entry.state is vm.state \
                and entry.revision == vm.view_revision:
            return entry
        encoded = self._split(vm.to_dict(), _fingerprint(vm))
        self._cache[vm.record.id] = encoded
        return encoded

    def _split(self, obj: dict[str, Any], fingerprint: tuple[object, VMState | None, int]
               = (None, None, 0), intern: bool = True) -> _Encoded:
        flat: list[tuple[bytes, bool]] = [(b"{", False)]  # (piece, the VM's own)
        summary: list[tuple[bytes, bool]] = [(b"{", False)]
        for index, (key, value) in enumerate(obj.items()):
            comma = b"," if index else b""
            if key == "settings" and isinstance(value, dict):
                flat.append((comma + b'"settings":{', False))
                flat.extend(((b"," if i else b"") + _pair(k, v), k == "name")
                            for i, (k, v) in enumerate(value.items()))
                flat.append((b"}", False))
                continue
            piece = comma + _pair(key, value)
            flat.append((piece, key in OWN_KEYS))
            if key in SUMMARY_KEYS:
                cut = piece if len(summary) > 1 or not comma else piece[1:]
                summary.append((cut, key in OWN_KEYS))
        for key in SUMMARY_KEYS:
            if key not in obj:
                summary.append(((b"," if len(summary) > 1 else b"") + _pair(key, None), False))
        flat.append((b"}", False))
        summary.append((b"}", False))
        keep = self._intern if intern else _same
        whole = _alternate(flat, keep)
        own = {piece: piece for piece in whole[1::2]}  # the summary's id+name is the flat's
        reduced = tuple(own.get(p, p) if i % 2 else p
                        for i, p in enumerate(_alternate(summary, keep)))
        return _Encoded(whole, reduced, fingerprint)

    def _intern(self, value: bytes) -> bytes:
        return self._interned.setdefault(value, value)

    def _intern_again(self) -> None:
        """Forget interned segments no cached VM uses any more (renamed or removed VMs)."""
        self._interned = {}
        for encoded in self._cache.values():
            encoded.flat = self._shared_segments(encoded.flat)
            encoded.summary = self._shared_segments(encoded.summary)

    def _shared_segments(self, pieces: tuple[bytes, ...]) -> tuple[bytes, ...]:
        return tuple(self._intern(p) if i % 2 == 0 else p for i, p in enumerate(pieces))


def _alternate(pieces: list[tuple[bytes, bool]],
               keep: Callable[[bytes], bytes]) -> tuple[bytes, ...]:
    """``segment, own, segment, own, …, segment``: each run of shared pieces joined into
    one segment passed through ``keep`` (interning; possibly ``b""``), adjacent own
    pieces joined into one (id and name; folder and creation time)."""
    out: list[bytes] = []
    run: list[bytes] = []
    for piece, own in pieces:
        if own and out and not run:
            out[-1] += piece
        elif own:
            out += (keep(b"".join(run)), piece)
            run = []
        else:
            run.append(piece)
    out.append(keep(b"".join(run)))
    return tuple(out)


def _fingerprint(vm: LiveVM) -> tuple[object, VMState | None, int]:
    return vm.record, vm.state, vm.view_revision


def _same(value: bytes) -> bytes:
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
