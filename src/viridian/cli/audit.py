"""``viridian audit``: the hash-chained audit log (docs/api.md, "Access")."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json, format_table
from viridian.cli.user import JSON_OPTION
from viridian.errors import HostError

__all__ = ["audit_command", "parse_since"]

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float) -> float:
    """UNIX time meant by ``text``: ``30m``/``2h``/``1d`` ago, an ISO 8601 time (local
    unless it names a zone), or UNIX seconds.

    :raises click.BadParameter: none of these (the message lists them).
    """
    text = text.strip()
    ago = _AGO.match(text)
    if ago:
        return now - float(ago[1]) * _SECONDS[ago[2]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a time; use 30m, 2h, 1d (ago), "
                                 "2026-12-06T19:00 (ISO 8601) or UNIX seconds") from None


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _row(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["seq"], _when(record["time"]), record.get("who") or "-",
            record.get("operation") or "-", record.get("target") or "-", record["result"],
            record.get("request") or "")


@click.command("audit")
@click.option("--since", default=None, metavar="TIME", help="30m, 2h, 1d, ISO 8601 or UNIX time.")
@click.option("--user", default=None, help="Only this user's records.")
@click.option("--vm", default=None, help="Only records about this VM.")
@click.option("--limit", type=click.IntRange(1, 100000), default=1000, show_default=True,
              help="At most this many (the newest).")
@click.option("--verify", is_flag=True, help="Check the hash chain instead (exit 6 if broken).")
@JSON_OPTION
@click.pass_context
def audit_command(ctx: click.Context, since: str | None, user: str | None, vm: str | None,
                  limit: int, verify: bool, as_json: bool) -> None:
    """Show the audit log: logins, denials and every change, oldest first."""
    client = open_client(ctx)
    if verify:
        verdict = client.get("/access/audit/verify")
        if as_json:
            emit_json(verdict)
        if not verdict["ok"]:
            raise HostError(f"the audit log's chain is broken at line {verdict['bad_line']}: "
                            f"{verdict['reason']}", **verdict)
        if not as_json:
            click.echo(f"audit log intact: {verdict['records']} records, chain verified")
        return
    params: dict[str, Any] = {"limit": limit}
    if since is not None:
        params["since"] = parse_since(since, time.time())
    params.update({k: v for k, v in (("user", user), ("vm", vm)) if v})
    records = client.get("/access/audit", params)["records"]
    if as_json:
        emit_json(records)
        return
    click.echo(format_table(("Seq", "Time", "Who", "Operation", "Target", "Result", "Request"),
                            [_row(r) for r in records]))
