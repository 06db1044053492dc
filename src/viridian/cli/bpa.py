"""``viridian bpa``: run the best-practices analyzer (``GET /bpa``) and show its findings."""

from __future__ import annotations

from typing import Any

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json, format_table

__all__ = ["bpa_command", "format_findings"]

STATUS_TEXT = {"fired": "FIRED", "ok": "ok", "not_applicable": "n/a", "no_data": "no data"}


def format_findings(report: dict[str, Any]) -> str:
    """A table of every rule, then why and how to fix each fired one."""
    findings = report["findings"]
    rows = [(STATUS_TEXT.get(f["status"], f["status"]), f["severity"], f["id"], f["measured"])
            for f in findings]
    lines = [format_table(("Status", "Severity", "Rule", "Measured"), rows)]
    for f in findings:
        if f["status"] == "fired":
            lines += ["", f"{f['id']} ({f['severity']}): {f['title']}",
                      f"  measured: {f['measured']}", f"  why: {f['why']}", f"  fix: {f['fix']}"]
    s = report["summary"]
    lines += ["", f"{s['fired']} fired, {s['ok']} ok, {s['not_applicable']} not applicable, "
                  f"{s['no_data']} without data"]
    return "\n".join(lines)


@click.command("bpa")
@click.option("--json", "as_json", is_flag=True, help="Print the API object.")
@click.pass_context
def bpa_command(ctx: click.Context, as_json: bool) -> None:
    """Check the host and its VMs against virtualization best practices."""
    report = open_client(ctx).get("/bpa", timeout=60)
    emit_json(report) if as_json else click.echo(format_findings(report))
