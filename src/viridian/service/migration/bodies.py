"""Request bodies of the migration routes (docs/api.md, "Migration")."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from viridian.service.http_boundary import RequestBody

Mode = Literal["quick", "live"]


class MoveRequest(RequestBody):
    """``POST /vms/{ref}/move``: where to, with which credential, and how."""

    to: str
    """The target service's URL (``http://HOST:PORT``), or the name of a host of this
    host's cluster (its service URL is read from its host record)."""
    token: str = ""
    """A token of the target service (a peer credential, sent only to ``to``); may be
    left out when the target is a member of this host's cluster (the cluster's peer
    token is used, docs/architecture.md "moves of HA VMs")."""
    mode: Mode = "live"
    bandwidth_mib_s: int | None = Field(None, ge=1, le=1_000_000)
    downtime_limit_ms: int | None = Field(None, ge=1, le=2_000_000)
    auto_converge: bool = True
    postcopy: bool = False
    with_storage: bool = False
    """Live, shared-nothing: the hard disks are copied to the target's data folder."""


class IncomingVM(RequestBody):
    """The moving VM as the source registered it."""

    id: str
    name: str
    folder: str
    created_at: str
    settings: dict[str, Any]


class IncomingRequest(RequestBody):
    """``POST /migrations/incoming``: the source asks the target to get ready."""

    mode: Mode
    vm: IncomingVM
    source: str = ""
    source_lease: int = 0
    """In a cluster: the lease the source's owner keys are bound to (the hand-over's
    guard)."""
    postcopy: bool = False
    with_storage: bool = False
    disks: dict[str, int] | None = None
    """Shared-nothing: each hard disk's path at the source → its virtual size in bytes."""


class MoveStorageRequest(RequestBody):
    """``POST /vms/{ref}/move-storage``: the folder the VM's hard disks move to."""

    folder: str
