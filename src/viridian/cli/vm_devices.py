"""``viridian vm disk|dvd|floppy|nic|com|console|screenshot``: a VM's devices.

Each command is one API call (docs/api.md, "Devices"); the service applies Hyper-V's rules
(what may change while the VM runs) and answers with the error the CLI shows.
``vm console`` attaches the terminal to a COM port's named pipe through the service's
WebSocket bridge: raw mode, Ctrl-] detaches.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import click

from viridian.cli.client import Answer, ApiClient, error_from_body, open_client, vm_path
from viridian.config import API_PREFIX
from viridian.errors import BadRequest, Conflict, HostError, NotFound, ViridianError

__all__ = [
    "ESCAPE", "com", "console", "disk", "dvd", "floppy", "nic", "run_console", "screenshot",
    "scsi",
]

ESCAPE = b"\x1d"  # Ctrl-]
ACCEPT_WAIT_S = 1.0
"""How long the console waits for a refusal before saying "Connected" (the service
refuses right after the handshake, before any byte of the port)."""
CONTROLLERS = click.Choice(["ide", "scsi"])


def _absolute(path: str | None) -> str | None:
    return os.path.abspath(os.path.expanduser(path)) if path else None


def _vm_line(vm: dict[str, Any], did: str) -> None:
    click.echo(f"{vm['name']}: {did} ({vm['state']})")


# --- disks and media ---------------------------------------------------------------------


@click.group("disk")
def disk() -> None:
    """Add or remove hard disks and DVD drives (SCSI hard disks also while the VM runs)."""


location_option = click.option(
    "--location",
    required=True,
    metavar="C:L",
    help="Controller:location, e.g. 0:1 (SCSI: C alone takes the first free location).",
)
controller_option = click.option(
    "--controller",
    type=CONTROLLERS,
    required=True,
    help="ide (boot disks, DVD drives) or scsi (hot-pluggable).",
)


@disk.command("add")
@click.argument("name")
@controller_option
@location_option
@click.option("--path", metavar="DISK", help="Virtual hard disk (or ISO for --dvd).")
@click.option("--dvd", is_flag=True, help="A DVD drive (IDE only), empty without --path.")
@click.pass_context
def disk_add(
    ctx: click.Context, name: str, controller: str, location: str, path: str | None, dvd: bool
) -> None:
    """Attach a drive to the VM NAME."""
    body = {"controller": controller, "location": location, "path": _absolute(path), "dvd": dvd}
    vm = open_client(ctx).post(vm_path(name, "disks"), body)
    _vm_line(vm, f"added {'DVD drive' if dvd else 'hard disk'} at {controller.upper()} {location}")


@disk.command("remove")
@click.argument("name")
@controller_option
@location_option
@click.pass_context
def disk_remove(ctx: click.Context, name: str, controller: str, location: str) -> None:
    """Detach the drive at --location from the VM NAME (the disk file is kept)."""
    client = open_client(ctx)
    vm = client.delete(vm_path(name, "disks", controller, quote(location, safe="")))
    _vm_line(vm, f"removed the drive at {controller.upper()} {location}")


def _set_media(ctx: click.Context, name: str, kind: str, body: dict[str, Any], did: str) -> None:
    _vm_line(open_client(ctx).request("PUT", vm_path(name, kind), body), did)


dvd_location = click.option(
    "--location", metavar="C:L", help="The DVD drive at IDE C:L (default: the first DVD drive)."
)


@click.group("dvd")
def dvd() -> None:
    """Insert or eject the DVD drive's ISO (also while the VM runs)."""


@dvd.command("insert")
@click.argument("name")
@click.argument("iso")
@dvd_location
@click.pass_context
def dvd_insert(ctx: click.Context, name: str, iso: str, location: str | None) -> None:
    """Put ISO into a DVD drive of the VM NAME (replacing what was in it)."""
    _set_media(ctx, name, "dvd", {"path": _absolute(iso), "location": location}, f"inserted {iso}")


@dvd.command("eject")
@click.argument("name")
@dvd_location
@click.pass_context
def dvd_eject(ctx: click.Context, name: str, location: str | None) -> None:
    """Eject the ISO from a DVD drive of the VM NAME."""
    _set_media(ctx, name, "dvd", {"path": None, "location": location}, "ejected the DVD")


@click.group("floppy")
def floppy() -> None:
    """Insert or eject the virtual floppy (also while the VM runs)."""


@floppy.command("insert")
@click.argument("name")
@click.argument("vfd")
@click.pass_context
def floppy_insert(ctx: click.Context, name: str, vfd: str) -> None:
    """Put the virtual floppy VFD into the floppy drive of the VM NAME."""
    _set_media(ctx, name, "floppy", {"path": _absolute(vfd)}, f"inserted {vfd}")


@floppy.command("eject")
@click.argument("name")
@click.pass_context
def floppy_eject(ctx: click.Context, name: str) -> None:
    """Eject the virtual floppy of the VM NAME."""
    _set_media(ctx, name, "floppy", {"path": None}, "ejected the floppy")


@click.group("scsi")
def scsi() -> None:
    """Add or remove SCSI controllers (the VM must be Off; up to 4 per VM)."""


scsi_controller_option = click.option(
    "--controller", type=int, metavar="N",
    help="Controller number 0..3 (add: default the lowest free; remove: default the only one).",
)


@scsi.command("add")
@click.argument("name")
@scsi_controller_option
@click.pass_context
def scsi_add(ctx: click.Context, name: str, controller: int | None) -> None:
    """Add a SCSI controller to the VM NAME; hard disks on it can then be added and
    removed while the VM runs."""
    vm = open_client(ctx).post(vm_path(name, "scsi"), {"controller": controller})
    _vm_line(vm, f"added SCSI controller {vm['scsi_controller']}")


@scsi.command("remove")
@click.argument("name")
@scsi_controller_option
@click.pass_context
def scsi_remove(ctx: click.Context, name: str, controller: int | None) -> None:
    """Remove a SCSI controller that holds no hard disk from the VM NAME."""
    params = {} if controller is None else {"controller": controller}
    vm = open_client(ctx).delete(vm_path(name, "scsi"), params)
    _vm_line(vm, f"removed SCSI controller {vm['scsi_controller']}")


# --- network adapters -----------------------------------------------------------------------


@click.group("nic")
def nic() -> None:
    """Add, change or remove network adapters (the VM must be Off).

    Adapters are named by --nic N, numbered from 1 as 'viridian vm show' lists them.
    """


switch_option = click.option(
    "--switch",
    metavar="S",
    help="A virtual switch (viridian switch list), 'user' (user-mode NAT) or 'none'.",
)
trunk_option = click.option(
    "--trunk", metavar="IDS", help="Trunk mode: tagged VLANs, e.g. 10,20-22 ('none': access)."
)
native_option = click.option(
    "--native", metavar="ID", help="Trunk mode: the VLAN of untagged frames (default 1)."
)
mac_option = click.option("--mac", metavar="dynamic|MAC", help="dynamic, or a static MAC.")
vlan_option = click.option("--vlan", metavar="ID", help="VLAN id 1-4094, or 'none'.")


@nic.command("add")
@click.argument("name")
@click.option("--legacy", is_flag=True, help="Legacy adapter (emulated DEC 21140, 'tulip').")
@switch_option
@mac_option
@vlan_option
@trunk_option
@native_option
@click.pass_context
def nic_add(
    ctx: click.Context,
    name: str,
    legacy: bool,
    switch: str | None,
    mac: str | None,
    vlan: str | None,
    trunk: str | None,
    native: str | None,
) -> None:
    """Add a network adapter (synthetic unless --legacy) to the VM NAME."""
    _one_vlan_mode(vlan, trunk)
    body = {
        "legacy": legacy,
        "switch": None if switch == "none" else switch,
        "mac": mac,
        "vlan": vlan,
        "trunk": trunk,
        "native": native,
    }
    vm = open_client(ctx).post(vm_path(name, "nics"), body)
    adapters = vm["settings"]["network_adapters"]
    _vm_line(vm, f"added network adapter {len(adapters)} with MAC {adapters[-1]['mac']}")


def nic_number_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--nic N`` (which adapter, numbered from 1) and its old spelling ``--index N``
    (hidden, kept for scripts); :func:`_nic_number` merges them."""
    command = click.option(
        "--nic",
        "nic_number",
        type=int,
        metavar="N",
        help="Which adapter (1.., as 'viridian vm show' lists them); needed if several.",
    )(command)
    return click.option("--index", "index_alias", type=int, hidden=True)(command)


def _nic_number(nic_number: int | None, index_alias: int | None) -> int | None:
    if nic_number is not None and index_alias is not None and nic_number != index_alias:
        raise click.UsageError(
            f"--nic {nic_number} and --index {index_alias} name different adapters; "
            "give --nic N only"
        )
    return nic_number if nic_number is not None else index_alias


@nic.command("set")
@click.argument("name")
@nic_number_option
@click.option("--legacy/--synthetic", default=None, help="Change the adapter's kind.")
@switch_option
@mac_option
@vlan_option
@trunk_option
@native_option
@click.pass_context
def nic_set(
    ctx: click.Context,
    name: str,
    nic_number: int | None,
    index_alias: int | None,
    legacy: bool | None,
    switch: str | None,
    mac: str | None,
    vlan: str | None,
    trunk: str | None,
    native: str | None,
) -> None:
    """Change a network adapter of the VM NAME. While the VM runs, its switch and VLAN
    may change (at once); kind and MAC need it Off."""
    _one_vlan_mode(vlan, trunk)
    client = open_client(ctx)
    index = _adapter_index(client, name, _nic_number(nic_number, index_alias))
    body = {
        "legacy": legacy,
        "switch": switch,
        "mac": mac,
        "vlan": vlan,
        "trunk": trunk,
        "native": native,
    }
    vm = client.patch(vm_path(name, "nics", str(index)), body)
    _vm_line(vm, f"changed network adapter {index}")


@nic.command("remove")
@click.argument("name")
@nic_number_option
@click.pass_context
def nic_remove(
    ctx: click.Context, name: str, nic_number: int | None, index_alias: int | None
) -> None:
    """Remove a network adapter from the VM NAME."""
    client = open_client(ctx)
    index = _adapter_index(client, name, _nic_number(nic_number, index_alias))
    vm = client.delete(vm_path(name, "nics", str(index)))
    _vm_line(vm, f"removed network adapter {index}")


def _one_vlan_mode(vlan: str | None, trunk: str | None) -> None:
    if vlan is not None and trunk is not None:
        raise BadRequest(
            "give --vlan ID (access mode) or --trunk IDS --native ID (trunk mode), not both"
        )


def _adapter_index(client: ApiClient, name: str, index: int | None) -> int:
    """``index``, or 1 when the VM has exactly one adapter (the service checks the rest)."""
    if index is not None:
        return index
    count = len(client.get(vm_path(name))["settings"]["network_adapters"])
    if count == 1:
        return 1
    if count == 0:
        raise NotFound(f"VM '{name}' has no network adapter; add one with 'viridian vm nic add'")
    raise BadRequest(f"VM '{name}' has {count} network adapters; name one with --nic 1..{count}")


# --- COM ports, console, screen ---------------------------------------------------------------


@click.group("com")
def com() -> None:
    """Connect COM1/COM2 (the VM must be Off)."""


@com.command("set")
@click.argument("name")
@click.argument("port", type=click.IntRange(1, 2))
@click.option(
    "--pipe",
    metavar="PATH",
    help="A named pipe: UNIX socket at PATH ('default': in the VM's runtime folder).",
)
@click.option("--remote", metavar="HOST:PORT", help="Connect to HOST:PORT over TCP.")
@click.option("--none", "none", is_flag=True, help="Not connected.")
@click.pass_context
def com_set(
    ctx: click.Context, name: str, port: int, pipe: str | None, remote: str | None, none: bool
) -> None:
    """Connect COM PORT of the VM NAME to a named pipe, a remote address, or nothing."""
    if sum(x is not None and x is not False for x in (pipe, remote, none)) != 1:
        raise click.UsageError("give exactly one of --pipe PATH, --remote HOST:PORT or --none")
    body = {"pipe": "" if pipe == "default" else _absolute(pipe), "remote": remote, "none": none}
    if pipe is None:
        body["pipe"] = None
    vm = open_client(ctx).request("PUT", vm_path(name, "com", str(port)), body)
    shown = vm["settings"][f"com{port}"]
    _vm_line(
        vm,
        f"COM{port} is {shown['kind']} {shown.get('path') or shown.get('address') or ''}".rstrip(),
    )


@click.command("screenshot")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def screenshot(ctx: click.Context, name: str, file: Path) -> None:
    """Save the screen of the running VM NAME as a PNG file."""
    _check_folder(file)
    png = open_client(ctx).get_bytes(vm_path(name, "screenshot"))
    _write_whole(file, png)
    click.echo(f"{name}: screen saved to {file} ({len(png)} bytes)")


def _check_folder(file: Path) -> None:
    """Raise before asking the service when ``file`` cannot be created where it is.

    :raises NotFound: its folder does not exist. :raises BadRequest: that is not a folder.
    """
    folder = file.expanduser().absolute().parent
    if not folder.exists():
        raise NotFound(
            f"cannot save the screen to {file}: the folder {folder} does not exist; "
            "nothing was written"
        )
    if not folder.is_dir():
        raise BadRequest(
            f"cannot save the screen to {file}: {folder} is not a folder; nothing was written"
        )


def _write_whole(file: Path, data: bytes) -> None:
    """Write ``data`` to ``file`` through a temporary file and a rename: all or nothing.

    :raises HostError: the file system refused (the temporary file is removed).
    """
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, file)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise HostError(
            f"cannot save the screen to {file}: {err.strerror or err}; nothing was written"
        ) from err


@click.command("console")
@click.argument("name")
@click.option(
    "--com",
    "port",
    type=click.IntRange(1, 2),
    default=1,
    show_default=True,
    help="Which COM port (its named pipe).",
)
@click.pass_context
def console(ctx: click.Context, name: str, port: int) -> None:
    """Attach this terminal to a COM port of the running VM NAME (Ctrl-] detaches)."""
    client = open_client(ctx)

    def connected() -> None:
        click.echo(f"Connected to COM{port} of {name}. Escape character is '^]'.", err=True)

    run_console(client, name, port, sys.stdin.buffer, sys.stdout.buffer, connected)
    click.echo("\r\nDetached.", err=True)


def run_console(
    client: ApiClient,
    name: str,
    port: int,
    stdin: IO[bytes],
    stdout: IO[bytes],
    on_connected: Callable[[], None] = lambda: None,
) -> None:
    """Bridge ``stdin``/``stdout`` to the COM port until Ctrl-], end of input, or the
    service closing. ``on_connected`` runs once the service accepted (no refusal came
    within :data:`ACCEPT_WAIT_S`). Raises only ``ViridianError``, translated by the
    client as for any request (docs/api.md, exit codes)."""
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    url = _ws_url(client, name, port)
    headers = {"Authorization": f"Bearer {client.endpoint.token}"} if client.endpoint.token else {}
    tls = client.tls_context() if url.startswith("wss://") else None  # trust: before sending
    try:
        with connect(url, additional_headers=headers, max_size=None, open_timeout=10,
                     ssl=tls) as ws:
            first = _accepted(ws)
            on_connected()
            with _raw_terminal(stdin):
                receiver = _Receiver(ws, stdout, first)
                receiver.start()
                _send_input(ws, stdin, receiver.finished)
                ws.close()
                receiver.join()
    except InvalidStatus as err:
        response = err.response
        answer = Answer(response.status_code, "", bytes(response.body or b""))
        raise client.response_error(answer) from err
    except (OSError, WebSocketException) as err:
        raise client.transport_error(err) from err
    if receiver.error is not None:
        raise receiver.error


def _accepted(ws: Any) -> bytes:
    """The port's first bytes (maybe none) once the service accepted the console.

    :raises ViridianError: the service's refusal (it sends one text frame, then closes).
    """
    from websockets.exceptions import ConnectionClosed

    try:
        message = ws.recv(timeout=ACCEPT_WAIT_S)
    except TimeoutError:
        return b""
    except ConnectionClosed as err:
        raise Conflict(f"the service closed the console at once ({err})") from err
    if isinstance(message, str):
        raise _refusal(message)
    return bytes(message)


def _refusal(message: str) -> ViridianError:
    try:
        body = json.loads(message).get("error")
    except (ValueError, AttributeError):
        body = {"message": message}
    return error_from_body(body, 409)


def _ws_url(client: ApiClient, name: str, port: int) -> str:
    base = client.endpoint.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{base}{API_PREFIX}{vm_path(name, 'console')}?com={port}"


class _Receiver(threading.Thread):
    """Copies the port's bytes (``first``, then the rest) to ``stdout``; keeps a late
    refusal as ``error``."""

    def __init__(self, ws: Any, stdout: IO[bytes], first: bytes) -> None:
        super().__init__(daemon=True)
        self.ws, self.stdout, self.first = ws, stdout, first
        self.error: ViridianError | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        if self.first:
            self.stdout.write(self.first)
            self.stdout.flush()
        try:
            for message in self.ws:
                if isinstance(message, str):
                    self.error = _refusal(message)
                    break
                self.stdout.write(message)
                self.stdout.flush()
        except ConnectionClosed:
            pass
        finally:
            self.finished.set()


def _send_input(ws: Any, stdin: IO[bytes], finished: threading.Event) -> None:
    """Send what is typed until Ctrl-], end of input, or the far side finishing."""
    fd = stdin.fileno()
    while not finished.is_set():
        if not _readable(fd, finished):
            continue
        data = os.read(fd, 1024)
        if not data:
            return
        data, escaped = data.partition(ESCAPE)[0], ESCAPE in data
        if data:
            ws.send(data)
        if escaped:
            return


def _readable(fd: int, finished: threading.Event) -> bool:
    import select

    ready, _, _ = select.select([fd], [], [], 0.2)
    return bool(ready) and not finished.is_set()


@contextmanager
def _raw_terminal(stdin: IO[bytes]) -> Any:
    """Raw mode while attached (keys go to the guest as typed), restored afterwards."""
    if not stdin.isatty():
        yield
        return
    import termios
    import tty

    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
