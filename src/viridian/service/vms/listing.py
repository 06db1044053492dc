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

Such a VM's encoded object is cached; any other VM (running, paused, in a job) is encoded
afresh on every request — those are few, bounded by the host's memory and processors.
The bytes are exactly what the API would send for the same vm objects: compact JSON,
UTF-8, like FastAPI's ``JSONResponse``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from viridian.model.states import VMState

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM

AT_REST = frozenset({VMState.OFF, VMState.SAVED})
CHUNK_BYTES = 64 * 1024
SUMMARY_KEYS = ("id", "name", "state", "enabled_state", "processors", "memory_mb", "uptime_s",
                "status", "heartbeat")
"""The keys of a vm object in ``GET /vms?view=summary`` (what ``viridian vm list`` shows)."""


def encode(obj: Any) -> bytes:
    """``obj`` as the API encodes a JSON body (compact, UTF-8, no NaN)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode()


def _encoded_pair(obj: dict[str, Any]) -> tuple[bytes, bytes]:
    """(the whole vm object, its summary) encoded."""
    return encode(obj), encode({key: obj.get(key) for key in SUMMARY_KEYS})


class VMListing:
    """Encoded vm objects of VMs at rest, by VM id (see the module docstring)."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, tuple[object, VMState, int, tuple[bytes, bytes]]] = {}

    def body(self, vms: Sequence[LiveVM], summary: bool = False) -> bytes:
        """``{"vms": [vm, …]}`` for ``vms`` in the order given, each vm object whole or
        (``summary``) reduced to :data:`SUMMARY_KEYS`. VMs no longer given are forgotten."""
        return b"".join(self.chunks(vms, summary))

    def chunks(self, vms: Sequence[LiveVM], summary: bool = False) -> Iterator[bytes]:
        """:meth:`body` in pieces of about :data:`CHUNK_BYTES`: a list of ten thousand VMs
        is never one large buffer. The vm objects are taken now (a snapshot); only the
        joining happens as the pieces are consumed."""
        parts = [self.encoded(vm)[summary] for vm in vms]
        if len(self._cache) > len(parts):  # removed VMs: keep only what was just listed
            listed = {vm.record.id for vm in vms}
            self._cache = {k: v for k, v in self._cache.items() if k in listed}
        return _pieces(parts)

    def encoded(self, vm: LiveVM) -> tuple[bytes, bytes]:
        """The JSON of ``vm``'s vm object and of its summary: from the cache while valid."""
        if vm.worker is not None or vm.state not in AT_REST:
            return _encoded_pair(vm.to_dict())
        entry = self._cache.get(vm.record.id)
        if entry is not None and entry[0] is vm.record and entry[1] is vm.state \
                and entry[2] == vm.view_revision:
            return entry[3]
        data = _encoded_pair(vm.to_dict())
        self._cache[vm.record.id] = (vm.record, vm.state, vm.view_revision, data)
        return data

    def remember(self, vm: LiveVM, obj: dict[str, Any]) -> None:
        """Keep ``obj`` — ``vm.to_dict()`` just built by the caller — for the next list."""
        if vm.worker is None and vm.state in AT_REST:
            self._cache[vm.record.id] = (vm.record, vm.state, vm.view_revision,
                                         _encoded_pair(obj))


def _pieces(parts: list[bytes]) -> Iterator[bytes]:
    yield b'{"vms":['
    start, size = 0, 0
    for index, part in enumerate(parts):
        size += len(part) + 1
        if size >= CHUNK_BYTES:
            yield (b"," if start else b"") + b",".join(parts[start:index + 1])
            start, size = index + 1, 0
    if start < len(parts):
        yield (b"," if start else b"") + b",".join(parts[start:])
    yield b"]}"
