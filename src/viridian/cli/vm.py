"""``viridian vm ...``: define, inspect, change, run and remove virtual machines.

Each command is one or two API calls (docs/api.md, "VMs" and "Jobs"). Options are checked
here for syntax only (a size, a list of boot devices, one of the named values); the
service checks ranges and files and answers with the error the CLI then shows.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from viridian.cli.client import job_outcome, open_client, vm_path, wait_for_job
from viridian.cli.job import print_job_id
from viridian.cli.lazy import LazyCommand, LazyGroup
from viridian.cli.output import (
    JobProgress,
    emit_json,
    emit_json_body,
    format_vm_details,
    format_vm_table,
    vm_state_line,
)
from viridian.cli.provision import TemplateOrder, new_from_template, template_options
from viridian.cli.sizes import SIZE_MB, size_help

__all__ = ["BootOrder", "settings_patch", "vm_group"]

BOOT_DEVICES = ("cd", "ide", "net", "floppy")
AUTO_START_CHOICES = ("nothing", "if-running", "always")
AUTO_STOP_CHOICES = ("save", "turn-off", "shut-down")

LIFECYCLE_HELP = {
    "start": "Start the VM (from Saved: restore it where it was).",
    "stop": "Turn the VM off at once, like pulling the plug.",
    "shutdown": "Shut down the guest gracefully (guest agent, else ACPI power button).",
    "save": "Save memory and device state to the VM's folder; the VM is then Saved.",
    "pause": "Pause the VM's processors.",
    "resume": "Resume a paused VM.",
    "reset": "Reset the VM, like pressing its reset button.",
}

SETTING_PATHS: dict[str, tuple[str, ...]] = {
    "memory": ("memory", "startup_mb"),
    "processors": ("processor", "count"),
    "reserve": ("processor", "reserve_pct"),
    "limit": ("processor", "limit_pct"),
    "weight": ("processor", "weight"),
    "boot_order": ("bios", "startup_order"),
    "numlock": ("bios", "num_lock"),
    "auto_start": ("automatic_start", "action"),
    "auto_start_delay": ("automatic_start", "delay_s"),
    "auto_stop": ("automatic_stop", "action"),
    "notes": ("notes",),
    "new_name": ("name",),
    "ha": ("high_availability", "ha"),
    "priority": ("high_availability", "priority"),
    "preferred_hosts": ("high_availability", "preferred_hosts"),
    "anti_affinity": ("high_availability", "anti_affinity"),
    "failback": ("high_availability", "failback"),
    "preferred_site": ("high_availability", "preferred_site"),
    "failback_window": ("high_availability", "failback_window"),
}
"""``vm set`` option → where its (already converted) value goes in the settings dict."""
OPTION_FLAGS = {"new_name": "--name"}
"""``vm set`` options whose flag is not their parameter name."""


class BootOrder(click.ParamType[list[str]]):
    """``cd,ide,net,floppy`` (any order, any subset) → list of device names."""

    name = "DEVICES"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> list[str]:
        if isinstance(value, list):
            return value
        devices = [item.strip().lower() for item in str(value).split(",")]
        unknown = [item for item in devices if item not in BOOT_DEVICES]
        if unknown:
            self.fail(
                f"unknown boot device {unknown[0]!r} in {value!r}; allowed: "
                f"{', '.join(BOOT_DEVICES)} (comma-separated, e.g. cd,ide,net,floppy)",
                param,
                ctx,
            )
        return devices


def _api_word(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """CLI spelling → API spelling: ``if-running`` → ``if_running``."""
    return value.replace("-", "_") if value is not None else None


def _on_off(_ctx: click.Context, _param: click.Parameter, value: str | None) -> bool | None:
    return None if value is None else value == "on"


def _names(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str] | None:
    """``A,B`` → ["A", "B"]; an empty string clears the list."""
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


def _hours(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``22-6`` → [22, 6]; ``now`` → None (failback immediately); unset → leave alone."""
    if value is None:
        return None
    if value == "now":
        return _CLEAR
    start, sep, end = value.partition("-")
    if not (sep and start.isdigit() and end.isdigit()):
        raise click.BadParameter(f"{value!r} is not START-END hours (e.g. 22-6) or 'now'",
                                 ctx, param)
    return [int(start), int(end)]


_CLEAR = object()
"""A ``vm set`` value that sets its setting to null."""


def settings_patch(values: dict[str, Any]) -> dict[str, Any]:
    """The partial settings dict (docs/api.md) for the ``vm set`` options that were given."""
    patch: dict[str, Any] = {}
    for option, path in SETTING_PATHS.items():
        if values.get(option) is not None:
            parent = patch
            for key in path[:-1]:
                parent = parent.setdefault(key, {})
            parent[path[-1]] = None if values[option] is _CLEAR else values[option]
    return patch


def _shown_setting(settings: Any, path: tuple[str, ...]) -> str:
    """``memory.startup_mb=1024`` as the service now has it (lists comma-joined)."""
    value = settings
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    shown = ",".join(map(str, value)) if isinstance(value, list) else value
    return f"{'.'.join(path)}={shown}"


def _absolute(path: str | None) -> str | None:
    """Paths go to a service with another working directory: make them absolute here."""
    return os.path.abspath(os.path.expanduser(path)) if path else None


json_option = click.option("--json", "as_json", is_flag=True, help="Print the API object.")
new_memory_option = click.option(
    "--memory", type=SIZE_MB, help=size_help("Startup memory", "512MB (the service's default)")
)
set_memory_option = click.option(
    "--memory", type=SIZE_MB, help=size_help("Startup memory", "unchanged")
)
processors_option = click.option("--processors", type=int, help="Number of virtual processors.")


DEVICES = "viridian.cli.vm_devices"
INTEGRATION = "viridian.cli.vm_integration"
SUBCOMMANDS = {
    "disk": LazyCommand(
        DEVICES,
        "disk",
        "Add or remove hard disks and DVD drives (SCSI hard disks also while the VM runs).",
    ),
    "dvd": LazyCommand(
        DEVICES, "dvd", "Insert or eject the DVD drive's ISO (also while the VM runs)."
    ),
    "floppy": LazyCommand(
        DEVICES, "floppy", "Insert or eject the virtual floppy (also while the VM runs)."
    ),
    "scsi": LazyCommand(
        DEVICES, "scsi", "Add or remove SCSI controllers (the VM must be Off; up to 4 per VM)."
    ),
    "nic": LazyCommand(
        DEVICES, "nic", "Add, change or remove network adapters (the VM must be Off)."
    ),
    "com": LazyCommand(DEVICES, "com", "Connect COM1/COM2 (the VM must be Off)."),
    "console": LazyCommand(
        DEVICES,
        "console",
        "Attach this terminal to a COM port of the running VM NAME (Ctrl-] detaches).",
    ),
    "screenshot": LazyCommand(
        DEVICES, "screenshot", "Save the screen of the running VM NAME as a PNG file."
    ),
    "integration": LazyCommand(
        INTEGRATION,
        "integration",
        "List a VM's integration services and what they report; switch them on or off.",
    ),
    "exec": LazyCommand(
        INTEGRATION,
        "exec_command",
        "Run COMMAND in the guest through the guest agent (no network needed).",
    ),
    "copy-file": LazyCommand(
        INTEGRATION,
        "copy_file",
        "Copy the host file SOURCE into the guest as GUEST_PATH (like Copy-VMFile).",
    ),
    "measure": LazyCommand(
        "viridian.cli.vm_measure",
        "measure",
        "Resource use of a VM since metering was last reset (like Measure-VM).",
    ),
    "move": LazyCommand(
        "viridian.cli.vm_move",
        "move_vm",
        "Move VM NAME to the viridian host at --to (like Move-VM).",
    ),
    "move-storage": LazyCommand(
        "viridian.cli.vm_move",
        "move_storage",
        "Move the hard disks of VM NAME (Running or Off) into FOLDER on this host (like "
        "Move-VMStorage; live while it runs).",
    ),
    "export": LazyCommand(
        "viridian.cli.vm_interchange",
        "export_vm",
        "Export VM NAME (Off or Saved) into FOLDER/NAME: its configuration, disks, checkpoints "
        "and saved state (like Export-VM).",
    ),
    "import": LazyCommand(
        "viridian.cli.vm_interchange",
        "import_vm",
        "Import the VM exported to FOLDER, or register a removed VM's folder again (like "
        "Import-VM), or import a foreign VM.",
    ),
}
"""``vm`` subcommands kept in other modules, imported only when used."""


@click.group("vm", cls=LazyGroup, lazy=SUBCOMMANDS)
def vm_group() -> None:
    """Virtual machines."""


@vm_group.command("new")
@click.argument("name")
@new_memory_option
@processors_option
@click.option("--dvd", metavar="ISO", help="ISO image to put in the DVD drive (IDE 1:0).")
@click.option("--vhd", metavar="PATH", help="Hard disk to attach at IDE 0:0.")
@json_option
@template_options(template=True)
@click.pass_context
def new(
    ctx: click.Context,
    name: str,
    memory: int | None,
    processors: int | None,
    dvd: str | None,
    vhd: str | None,
    as_json: bool,
    order: TemplateOrder,
) -> None:
    """Define a new VM called NAME (it starts Off); with --template T, provision VMs
    from template T instead (overlay disks, a cloud-init seed; started; --dry-run shows
    the placement ratings)."""
    if new_from_template(ctx, name, order, memory, {
            "--processors": processors, "--dvd": dvd, "--vhd": vhd}):
        return
    body = {
        "name": name,
        "memory_mb": memory,
        "processors": processors,
        "dvd": _absolute(dvd),
        "vhd": _absolute(vhd),
    }
    vm = open_client(ctx).post("/vms", {k: v for k, v in body.items() if v is not None})
    if as_json:
        emit_json(vm)
    else:
        click.echo(
            f"created {vm['name']}: {vm['state']}, {vm['memory_mb']} MB, "
            f"{vm['processors']} processor(s), id {vm['id']}"
        )
        for notice in vm.get("notices") or []:
            click.echo(f"note: {notice}")


@vm_group.command("list")
@json_option
@click.pass_context
def list_vms(ctx: click.Context, as_json: bool) -> None:
    """List every VM with its state, processors, memory and uptime."""
    client = open_client(ctx)
    if as_json:
        emit_json_body(client.get_bytes("/vms"))  # as sent: fast at 10,000 VMs
    else:
        click.echo(format_vm_table(client.get("/vms", {"view": "summary"})["vms"]))


@vm_group.command("show")
@click.argument("name")
@json_option
@click.pass_context
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show a VM's state and every setting (NAME may also be the VM's id)."""
    vm = open_client(ctx).get(vm_path(name))
    if as_json:
        emit_json(vm)
    else:
        click.echo(format_vm_details(vm))
        for copy in vm.get("disk_copies") or []:
            click.echo(
                f"note: {copy['drive']} is {copy['path']}, a standalone copy of the "
                f"differencing disk {copy['copied_from']} (copied_from); the guest writes "
                "go to the copy"
            )


@vm_group.command("rename")
@click.argument("name")
@click.argument("new_name")
@click.pass_context
def rename(ctx: click.Context, name: str, new_name: str) -> None:
    """Rename VM NAME to NEW_NAME (also while it runs; its files keep their names)."""
    vm = open_client(ctx).post(vm_path(name, "rename"), {"name": new_name})
    click.echo(f"renamed VM '{name}' to '{vm['name']}'")


@vm_group.command("set")
@click.argument("name")
@click.option(
    "--name", "new_name", metavar="NEW", help="Rename the VM (its files keep their names)."
)
@set_memory_option
@processors_option
@click.option("--reserve", type=int, metavar="PCT", help="Processor reserve (%).")
@click.option("--limit", type=int, metavar="PCT", help="Processor limit (%).")
@click.option("--weight", type=int, metavar="N", help="Relative processor weight.")
@click.option("--boot-order", type=BootOrder(), help="BIOS startup order, e.g. cd,ide,net,floppy.")
@click.option(
    "--numlock", type=click.Choice(["on", "off"]), callback=_on_off, help="BIOS Num Lock at boot."
)
@click.option(
    "--auto-start",
    type=click.Choice(AUTO_START_CHOICES),
    callback=_api_word,
    help="Automatic start action when the host boots.",
)
@click.option("--auto-start-delay", type=int, metavar="S", help="Delay before automatic start.")
@click.option(
    "--auto-stop",
    type=click.Choice(AUTO_STOP_CHOICES),
    callback=_api_word,
    help="Automatic stop action when the host shuts down.",
)
@click.option("--notes", metavar="TEXT", help="Free-form notes.")
@click.option("--ha", type=click.Choice(["on", "off"]), callback=_on_off,
              help="Highly available: restarted on another cluster host when its host fails.")
@click.option("--priority", type=click.Choice(["high", "medium", "low", "none"]),
              help="Failover priority (none: not restarted by the cluster).")
@click.option("--preferred-hosts", metavar="A,B", callback=_names,
              help="Cluster hosts to restart it on first, in order ('' clears).")
@click.option("--anti-affinity", metavar="CLASS[,CLASS]", callback=_names,
              help="Anti-affinity classes: kept apart from VMs sharing one ('' clears).")
@click.option("--failback", type=click.Choice(["on", "off"]), callback=_on_off,
              help="Move back to the first preferred host when it is Up again.")
@click.option("--failback-window", metavar="START-END", callback=_hours,
              help="Local hours in which failback may happen, e.g. 22-6 ('now': "
                   "immediately).")
@click.option("--preferred-site", metavar="SITE",
              help="Cluster site to restart it in first; another site only when that "
                   "site cannot take it ('' clears).")
@click.pass_context
def set_settings(ctx: click.Context, /, name: str, **values: Any) -> None:
    """Change some of a VM's settings; the others stay as they are."""
    patch = settings_patch(values)
    if not patch:
        options = ", ".join(OPTION_FLAGS.get(o, "--" + o.replace("_", "-")) for o in SETTING_PATHS)
        raise click.UsageError(f"nothing to change; give at least one of {options}", ctx)
    vm = open_client(ctx).patch(vm_path(name), patch)
    changed = [
        _shown_setting(vm.get("settings"), path)
        for option, path in SETTING_PATHS.items()
        if values.get(option) is not None
    ]
    shown_name = name if values.get("new_name") is not None else vm["name"]
    click.echo(f"{shown_name}: changed {', '.join(changed)}")


@vm_group.command("remove")
@click.argument("name")
@click.option("--delete-files", is_flag=True, help="Also delete the VM's folder and disks in it.")
@click.pass_context
def remove(ctx: click.Context, name: str, delete_files: bool) -> None:
    """Remove a VM from the catalog (its files are kept unless --delete-files)."""
    params = {"delete_files": "true" if delete_files else "false"}
    answer = open_client(ctx).delete(vm_path(name), params)
    files = "deleted" if answer.get("deleted_files") else "kept"
    click.echo(f"removed {answer.get('removed', name)}; its files were {files}")


def run_action(
    ctx: click.Context, name: str, action: str, body: dict[str, Any] | None, no_wait: bool
) -> None:
    """POST the action; unless ``no_wait``, follow the job and print ``name: State``."""
    client = open_client(ctx)
    job = client.post(vm_path(name, action), body)
    if no_wait:
        print_job_id(job)
        return
    job_outcome(wait_for_job(client, job, JobProgress()))
    click.echo(vm_state_line(client.get(vm_path(name))))


def lifecycle_command(action: str) -> click.Command:
    """``vm <action> NAME [--no-wait]`` (``shutdown`` also takes ``--timeout S``)."""

    @click.command(action, help=LIFECYCLE_HELP[action])
    @click.argument("name")
    @click.option(
        "--no-wait",
        is_flag=True,
        help="Print the job id instead of waiting (then: viridian job wait ID).",
    )
    @click.pass_context
    def command(ctx: click.Context, name: str, no_wait: bool, timeout: float | None = None,
                turn_off: bool = False) -> None:
        body: dict[str, Any] = {"timeout_s": timeout} if timeout is not None else {}
        if turn_off:
            body["turn_off_after_timeout"] = True
        run_action(ctx, name, action, body or None, no_wait)

    if action == "shutdown":
        for option in SHUTDOWN_OPTIONS:
            command = option(command)
    return command


SHUTDOWN_OPTIONS: tuple[Callable[[click.Command], click.Command], ...] = (
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        metavar="SECONDS",
        help="Seconds the guest gets to shut down (default: 120).",
    ),
    click.option(
        "--turn-off-after-timeout",
        "--force",
        "turn_off",
        is_flag=True,
        help="Turn the VM off if the guest has not shut down within the timeout "
        "(default: fail and leave it Running).",
    ),
)
"""``vm shutdown``'s own options (Hyper-V offers "turn off" after a timeout)."""


@vm_group.command("delete-saved-state")
@click.argument("name")
@click.pass_context
def delete_saved_state(ctx: click.Context, name: str) -> None:
    """Discard a Saved VM's saved state: the VM becomes Off (like Hyper-V's Delete Saved
    State); refused in any other state."""
    client = open_client(ctx)
    vm = client.post(vm_path(name, "delete-saved-state"))
    click.echo(vm_state_line(vm))


for _action in LIFECYCLE_HELP:
    vm_group.add_command(lifecycle_command(_action))
