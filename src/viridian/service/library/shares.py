"""Libraries (storage paths the admin registers) and the index of what they hold: kind,
format, size, SHA-256 and what uses each file (VMs' drives, templates' provisioned VMs).
Checksums are cached by size and modification time (:class:`LibraryStore`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

from viridian.errors import BadRequest, Conflict, InvalidSetting, NotFound
from viridian.library.items import ItemKind, LibraryItem, check_library_name, kind_of
from viridian.model.slots import drive_slots
from viridian.service.context import ServiceContext
from viridian.service.library import images
from viridian.service.library.store import LibraryStore, Share

DEFAULT_LIBRARY = "default"
PARTIAL_SUFFIX = ".partial"

Uses = Callable[[Path], list[str]]


class LibraryIndex:
    """Registered libraries and their items."""

    def __init__(self, context: ServiceContext, store: LibraryStore) -> None:
        self.context, self.store = context, store
        self.extra_uses: Uses = lambda _path: []  # templates add theirs (capability wiring)

    def ensure_default(self) -> None:
        """``default`` at ``<data>/library``, registered on the first start."""
        if not any(s.name == DEFAULT_LIBRARY for s in self.store.shares()):
            path = self.context.data_dir / "library"
            path.mkdir(mode=0o700, exist_ok=True)
            self.store.add_share(DEFAULT_LIBRARY, path)

    def add(self, name: str, path: str) -> dict[str, object]:
        """Register the existing folder ``path`` (absolute) as library ``name``.

        :raises InvalidSetting: a bad name or a relative path. :raises NotFound: no such
            folder. :raises Conflict: the name or path is registered already."""
        check_library_name(name)
        if not Path(path).is_absolute():
            raise InvalidSetting("path", path, "an absolute path of an existing folder")
        folder = Path(path).resolve()
        if not folder.is_dir():
            raise NotFound(f"no folder {folder}; nothing was changed", path=str(folder))
        share = self.store.add_share(name, folder)
        return {"name": share.name, "path": str(share.path)}

    def remove(self, name: str, in_use: Callable[[Share], list[str]]) -> dict[str, object]:
        """Unregister library ``name`` (its files stay); refused while ``in_use`` names
        VMs that depend on its templates."""
        share = self.store.share(name)
        users = in_use(share)
        if users:
            raise Conflict(f"library '{name}' holds templates in use by {', '.join(users)}; "
                           "nothing was changed", library=name, vms=users)
        self.store.remove_share(name)
        return {"removed": name, "path": str(share.path), "files_kept": True}

    async def listing(self) -> list[dict[str, object]]:
        found = []
        for share in self.store.shares():
            items = await self.items(share)
            found.append({"name": share.name, "path": str(share.path), "items": len(items),
                          "bytes": sum(i.size for i in items)})
        return found

    async def show(self, name: str) -> dict[str, object]:
        share = self.store.share(name)
        items = await self.items(share)
        return {"name": share.name, "path": str(share.path),
                "items": [i.to_dict() for i in items]}

    async def item(self, library: str, name: str) -> LibraryItem:
        share = self.store.share(library)
        path = self.resolve(share, name)
        if not path.is_file():
            raise NotFound(f"no item '{name}' in library '{library}'", library=library,
                           name=name)
        return await self.describe(share, path)

    def resolve(self, share: Share, name: str) -> Path:
        """The file ``name`` (relative) inside ``share``; a name leaving it is refused."""
        path = (share.path / name).resolve()
        if not path.is_relative_to(share.path) or path == share.path:
            raise BadRequest(f"item name '{name}' leaves library '{share.name}'",
                             name=name)
        return path

    async def items(self, share: Share) -> list[LibraryItem]:
        return [await self.describe(share, path) for path in _files(share.path)]

    async def describe(self, share: Share, path: Path) -> LibraryItem:
        stat = path.stat()
        sha = self.store.cached_sha256(path, stat.st_size, stat.st_mtime_ns)
        if sha is None:
            sha = await asyncio.to_thread(images.sha256_of, path)
            self.store.remember_sha256(path, stat.st_size, stat.st_mtime_ns, sha)
        fmt = await asyncio.to_thread(images.format_of, path)
        relative = path.relative_to(share.path).as_posix()
        kind = kind_of(relative, fmt)
        return LibraryItem(share.name, relative, str(path), kind, fmt, stat.st_size, sha,
                           tuple(self.uses(path)) if kind is not ItemKind.OTHER else ())

    def uses(self, path: Path) -> list[str]:
        """Who uses ``path``: VMs whose drives hold it, then what :attr:`extra_uses` adds."""
        found = []
        for vm in self.context.vms().values():
            for slot in drive_slots(vm.record.settings):
                if slot.path and Path(slot.path) == path:
                    found.append(f"VM '{vm.record.name}' ({slot.label})")
        return found + self.extra_uses(path)


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith(PARTIAL_SUFFIX) \
                and not any(p.startswith(".") for p in path.relative_to(root).parts):
            yield path
