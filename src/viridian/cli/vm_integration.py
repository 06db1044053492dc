"""``viridian vm integration|exec|copy-file``: Hyper-V's integration services (docs/api.md,
"Integration services"). ``vm_group`` imports these commands when they are first used."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import click

from viridian.cli.client import open_client, vm_path
from viridian.cli.output import emit_json, format_table
from viridian.cli.vm import json_option

__all__ = ["copy_file", "exec_command", "integration"]

SERVICES = ("operating_system_shutdown", "time_synchronization", "heartbeat",
            "key_value_pair_exchange", "backup", "guest_services")
SERVICE_TITLES = {
    "operating_system_shutdown": "Operating system shutdown",
    "time_synchronization": "Time synchronization",
    "heartbeat": "Heartbeat",
    "key_value_pair_exchange": "Key-value pair exchange",
    "backup": "Backup (volume snapshot)",
    "guest_services": "Guest services",
}


class ServiceName(click.ParamType[str]):
    """A service by its API name; dashes are accepted for underscores."""

    name = "SERVICE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        word = str(value).strip().lower().replace("-", "_")
        if word not in SERVICES:
            self.fail(f"unknown integration service {value!r}; allowed: {', '.join(SERVICES)}",
                      param, ctx)
        return word


def _kvp_items(sets: tuple[str, ...], removes: tuple[str, ...]) -> dict[str, str | None]:
    items: dict[str, str | None] = {}
    for pair in sets:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set-kvp")
        items[key] = value
    items.update({key: None for key in removes})
    return items


def format_integration(view: dict[str, Any]) -> str:
    enabled = view.get("services", {})
    rows = [(SERVICE_TITLES[s], s, "on" if enabled.get(s) else "off") for s in SERVICES]
    lines = [format_table(("SERVICE", "NAME", "ENABLED"), rows), ""]
    lines.append(f"Heartbeat:    {view.get('heartbeat') or '-'}")
    guest = view.get("guest") or {}
    if guest:
        lines.append(f"Host name:    {guest.get('host_name') or '-'}")
        osinfo = guest.get("os") or {}
        lines.append(f"OS:           {osinfo.get('pretty-name') or osinfo.get('name') or '-'}"
                     f" {osinfo.get('version', '')}".rstrip())
        for nic in guest.get("network") or []:
            addresses = ", ".join(nic.get("ip_addresses") or []) or "no address"
            lines.append(f"Network:      {nic.get('name')} {nic.get('mac') or ''} {addresses}")
    for key, value in sorted((view.get("host_kvp") or {}).items()):
        lines.append(f"Host KVP:     {key}={value}")
    return "\n".join(lines)


@click.command("integration")
@click.argument("name")
@click.option("--enable", "enable", multiple=True, type=ServiceName(),
              help="Switch an integration service on (repeatable).")
@click.option("--disable", "disable", multiple=True, type=ServiceName(),
              help="Switch an integration service off (repeatable).")
@click.option("--set-kvp", "set_kvp", multiple=True, metavar="KEY=VALUE",
              help="A key-value pair the host pushes to the guest (repeatable).")
@click.option("--remove-kvp", "remove_kvp", multiple=True, metavar="KEY",
              help="Remove a host key-value pair (repeatable).")
@json_option
@click.pass_context
def integration(ctx: click.Context, name: str, enable: tuple[str, ...],
                disable: tuple[str, ...], set_kvp: tuple[str, ...],
                remove_kvp: tuple[str, ...], as_json: bool) -> None:
    """List a VM's integration services and what they report; switch them on or off."""
    both = sorted(set(enable) & set(disable))
    if both:
        raise click.UsageError(f"{both[0]} is both enabled and disabled", ctx)
    client = open_client(ctx)
    switches = {**{s: True for s in enable}, **{s: False for s in disable}}
    view = client.patch(vm_path(name, "integration"), switches) if switches \
        else client.get(vm_path(name, "integration"))
    items = _kvp_items(set_kvp, remove_kvp)
    if items:
        answer = client.request("PUT", vm_path(name, "integration", "kvp"), body={"items": items})
        view["host_kvp"] = answer["host_kvp"]
    if as_json:
        emit_json(view)
    else:
        click.echo(format_integration(view))


@click.command("exec", context_settings={"ignore_unknown_options": True,
                                             "allow_interspersed_args": False})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, metavar="S", help="Seconds the command may run.")
@click.option("--stdin", "use_stdin", is_flag=True, help="Send this terminal's stdin to it.")
@click.pass_context
def exec_command(ctx: click.Context, name: str, command: tuple[str, ...], timeout: float,
                 use_stdin: bool) -> None:
    """Run COMMAND in the guest through the guest agent (no network needed).

    Its stdout and stderr come back; the exit code is the guest command's.
    Write `--` before the command: viridian vm exec NAME -- ls -l /
    """
    argv = list(command[1:] if command[:1] == ("--",) else command)
    if not argv:
        raise click.UsageError("give the command to run after --", ctx)
    body: dict[str, Any] = {"argv": argv, "timeout_s": timeout}
    if use_stdin:
        body["stdin_b64"] = base64.b64encode(sys.stdin.buffer.read()).decode()
    answer = open_client(ctx).post(vm_path(name, "integration", "exec"), body)
    sys.stdout.buffer.write(base64.b64decode(answer["stdout_b64"]))
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(base64.b64decode(answer["stderr_b64"]))
    sys.stderr.buffer.flush()
    note = truncation_note(answer)
    if note:
        click.echo(note, err=True)
    ctx.exit(int(answer["exit_code"]))


def truncation_note(answer: dict[str, Any]) -> str | None:
    """The note printed on stderr when the guest agent cut a stream (``None``: none
    was cut). Absent fields (an older service) count as not cut."""
    cut = [stream for stream in ("stdout", "stderr") if answer.get(f"{stream}_truncated")]
    if not cut:
        return None
    return (f"viridian: the guest's {' and '.join(cut)} was cut (the guest agent returns at "
            "most 16 MiB of each stream; the end shown above marks the cut); redirect the "
            "output to a file in the guest to keep all of it")


@click.command("copy-file")
@click.argument("name")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("guest_path")
@click.option("--force", is_flag=True, help="Replace the file if it exists in the guest.")
@click.pass_context
def copy_file(ctx: click.Context, name: str, source: Path, guest_path: str,
              force: bool) -> None:
    """Copy the host file SOURCE into the guest as GUEST_PATH (like Copy-VMFile)."""
    body = {"path": guest_path, "overwrite": force,
            "content_b64": base64.b64encode(source.read_bytes()).decode()}
    answer = open_client(ctx).post(vm_path(name, "integration", "files"), body)
    click.echo(f"copied {source} to {name}:{answer['path']} ({answer['bytes']} bytes)")
