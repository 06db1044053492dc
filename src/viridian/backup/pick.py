"""Which point ``backup restore VM --to-time TIME`` means (pure; docs/api.md, "Backup"):
the newest *good* point of the VM taken at or before TIME. A point's time is its
``created_at``, the instant its point in time was made (freeze + transaction), in UTC.

TIME is ISO 8601 (``2026-12-06T23:15:00+01:00``, ``…Z``) or ``YYYY-MM-DD HH:MM``; a time
without an offset is in the time zone the caller states (the CLI: the local one)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo

from viridian.backup.records import BackupRecord
from viridian.errors import InvalidSetting, NotFound

ALLOWED = ("an ISO 8601 time (2026-12-06T23:15:00+01:00, 2026-12-06T22:15Z) or "
           "'YYYY-MM-DD HH:MM' (in the stated time zone)")


def parse_time(text: str, zone: tzinfo) -> datetime:
    """``text`` as an aware time; without an offset it is in ``zone``.

    :raises InvalidSetting: not one of the allowed forms."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as err:
        raise InvalidSetting("to_time", text, ALLOWED) from err
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


def taken_at(record: BackupRecord) -> datetime:
    return datetime.fromisoformat(record.created_at)


def point_at(records: Iterable[BackupRecord], vm_id: str, vm_name: str,
             when: datetime) -> BackupRecord:
    """The newest good point of VM ``vm_id`` taken at or before ``when`` (aware).

    :raises NotFound: the VM has no good point, or none that old (the oldest is named
        with its time)."""
    mine = sorted((r for r in records if r.vm_id == vm_id and r.good), key=taken_at)
    if not mine:
        raise NotFound(f"VM '{vm_name}' has no backup point; nothing was changed",
                       vm=vm_name)
    older = [r for r in mine if taken_at(r) <= when]
    if not older:
        oldest = mine[0]
        raise NotFound(f"no backup point of VM '{vm_name}' is as old as "
                       f"{when.isoformat()}: the oldest is {oldest.id}, taken "
                       f"{taken_at(oldest).astimezone(when.tzinfo).isoformat()}; nothing "
                       "was changed", vm=vm_name, oldest=oldest.id,
                       oldest_created_at=oldest.created_at)
    return older[-1]
