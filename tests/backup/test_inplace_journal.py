"""The journal of in-place restores on a real catalog (SQLite): what a killed restore
left is undone while it was still writing (the disks untouched, nothing left beside),
completed once it was renaming (every disk replaced, also those renamed before the
kill), and forgotten either way; the journal survives reopening the catalog."""

from __future__ import annotations

from pathlib import Path

from viridian.service.backup.inplace import InPlaceJournal, recover_in_place
from viridian.service.catalog import Catalog


def _disks(folder: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for name in ("one.raw", "two.raw"):
        (folder / name).write_bytes(b"old")
        (folder / f".{name}.restore").write_bytes(b"new")
        pairs.append((folder / f".{name}.restore", folder / name))
    return pairs


def test_writing_is_undone(tmp_path: Path) -> None:
    pairs = _disks(tmp_path)
    InPlaceJournal(Catalog(tmp_path / "catalog.db")).begin("r1", pairs)
    journal = InPlaceJournal(Catalog(tmp_path / "catalog.db"))  # a restarted service
    recover_in_place(journal)
    assert [final.read_bytes() for _, final in pairs] == [b"old", b"old"]
    assert not any(beside.exists() for beside, _ in pairs)
    assert journal.under_way() == []


def test_renaming_is_completed(tmp_path: Path) -> None:
    pairs = _disks(tmp_path)
    journal = InPlaceJournal(Catalog(tmp_path / "catalog.db"))
    journal.begin("r2", pairs)
    journal.renaming("r2")
    pairs[0][0].replace(pairs[0][1])  # the first rename happened before the kill
    recover_in_place(InPlaceJournal(Catalog(tmp_path / "catalog.db")))
    assert [final.read_bytes() for _, final in pairs] == [b"new", b"new"]
    assert not any(beside.exists() for beside, _ in pairs)
    assert journal.under_way() == []
