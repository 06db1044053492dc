"""The peer: the same guest under libvirt (``qemu:///system``), when libvirt can run here.

:func:`prepare_libvirt` runs ``scripts/libvirt-setup.sh`` (installs libvirt and the
``libvirt-python`` bindings if missing, starts ``virtlogd``/``libvirtd`` in the background
when not running) and returns a reason string when libvirt cannot be used.

Operations go through the libvirt-python bindings (one persistent connection, as a
management service would hold) — ``defineXML``, ``create``, ``suspend``, ``resume``,
``save``, ``restore``, ``destroy``. Without the bindings, :class:`VirshDriver` times the
``virsh`` CLI instead and :func:`virsh_overhead_s` measures what a do-nothing virsh
command costs, so a reader can subtract it.

The domain is viridian's VM in libvirt's words: TCG (``type='qemu'``), pc-i440fx-7.2,
qemu64, the ISO as IDE cdrom at 1:0, an empty floppy, COM1 logged to a file (where READY
is awaited), COM2 unconnected, std VGA + VNC on a UNIX socket, the guest agent channel,
no USB and no balloon (viridian's QEMU has neither).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol
from xml.sax.saxutils import escape, quoteattr

from lifecycle_common import BenchError, Guest, wait_for_marker

URI = "qemu:///system"
SETUP = Path(__file__).resolve().parents[1] / "scripts" / "libvirt-setup.sh"
DOMAIN_PREFIX = "viridian-bench-"


def prepare_libvirt(install: bool = True) -> str | None:
    """Make libvirt usable; None when it is, else why not (to print and carry on)."""
    if not install:
        return None if _virsh_answers() else "libvirtd does not answer (setup skipped)"
    try:
        done = subprocess.run(
            ["bash", str(SETUP), sys.executable],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{SETUP.name} could not run: {err}"
    if done.returncode != 0:
        return f"{SETUP.name} failed ({done.returncode}): {done.stderr.strip()[-800:]}"
    return None


def _virsh_answers() -> bool:
    try:
        return (
            subprocess.run(
                ["virsh", "-c", URI, "uri"], capture_output=True, timeout=30, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def domain_xml(guest: Guest, name: str, folder: Path) -> str:
    """The libvirt domain equivalent to viridian's command line for ``guest``."""
    com1 = quoteattr(str(folder / "com1.log"))
    vnc = quoteattr(str(folder / "vnc.sock"))
    qga = quoteattr(str(folder / "qga.sock"))
    return f"""<domain type='qemu'>
  <name>{escape(name)}</name>
  <memory unit='MiB'>{guest.memory_mb}</memory>
  <vcpu>{guest.processors}</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model></cpu>
  <clock offset='utc'/>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file={quoteattr(str(guest.iso))}/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
      <address type='drive' controller='0' bus='1' target='0' unit='0'/>
      <boot order='1'/>
    </disk>
    <disk type='file' device='floppy'>
      <target dev='fda' bus='fdc'/>
    </disk>
    <controller type='usb' model='none'/>
    <serial type='file'><source path={com1} append='on'/><target port='0'/></serial>
    <serial type='null'><target port='1'/></serial>
    <channel type='unix'>
      <source mode='bind' path={qga}/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <graphics type='vnc' socket={vnc}/>
    <video><model type='vga'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
"""


class Driver(Protocol):
    """The libvirt verbs the benchmark times; each returns when libvirt says it is done."""

    label: str

    def define(self, xml_path: Path, xml: str) -> None: ...
    def call(self, verb: str, name: str, *args: str) -> None: ...
    def restore(self, path: Path) -> None: ...
    def undefine(self, name: str) -> None: ...
    def close(self) -> None: ...


class BindingsDriver:
    """libvirt-python over one connection to ``qemu:///system``."""

    label = "libvirt-python"

    def __init__(self) -> None:
        import libvirt  # type: ignore[import-untyped]

        self._libvirt: Any = libvirt
        libvirt.registerErrorHandler(_quiet, None)  # errors are raised; do not also print
        self.conn: Any = libvirt.open(URI)

    def define(self, xml_path: Path, xml: str) -> None:
        self.conn.defineXML(xml)

    def call(self, verb: str, name: str, *args: str) -> None:
        domain = self.conn.lookupByName(name)
        method = {
            "start": domain.create,
            "suspend": domain.suspend,
            "resume": domain.resume,
            "save": domain.save,
            "destroy": domain.destroy,
        }[verb]
        method(*args)

    def restore(self, path: Path) -> None:
        self.conn.restore(str(path))

    def undefine(self, name: str) -> None:
        try:
            domain = self.conn.lookupByName(name)
        except self._libvirt.libvirtError:
            return
        if domain.isActive():
            domain.destroy()
        domain.undefine()

    def close(self) -> None:
        self.conn.close()


def _quiet(_context: object, _error: object) -> None:
    pass


class VirshDriver:
    """The ``virsh`` CLI, one process per verb (includes virsh's own start-up)."""

    label = "virsh CLI"

    def define(self, xml_path: Path, xml: str) -> None:
        xml_path.write_text(xml)
        _virsh("define", str(xml_path))

    def call(self, verb: str, name: str, *args: str) -> None:
        _virsh(verb, name, *args)

    def restore(self, path: Path) -> None:
        _virsh("restore", str(path))

    def undefine(self, name: str) -> None:
        subprocess.run(["virsh", "-c", URI, "destroy", name], capture_output=True, check=False)
        subprocess.run(["virsh", "-c", URI, "undefine", name], capture_output=True, check=False)

    def close(self) -> None:
        pass


def _virsh(*args: str) -> None:
    done = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"virsh {' '.join(args)}: {done.stderr.strip()}")


def virsh_overhead_s(repeat: int = 5) -> float:
    """Median time of ``virsh -c qemu:///system uri``: virsh's start-up and connection."""
    samples = []
    for _ in range(repeat):
        begin = time.perf_counter()
        _virsh("uri")
        samples.append(time.perf_counter() - begin)
    return statistics.median(samples)


def open_driver(cli: bool = False) -> Driver:
    """The bindings when they import (and ``cli`` is false), else the ``virsh`` CLI.

    Raises BenchError when the bindings cannot connect to ``qemu:///system``.
    """
    if cli:
        return VirshDriver()
    try:
        return BindingsDriver()
    except ImportError:
        return VirshDriver()
    except Exception as err:  # libvirt.libvirtError; the module may not even import
        raise BenchError(f"cannot connect to {URI}: {err}") from err


class Libvirt:
    """The libvirt stack: domain ``viridian-bench-<n>`` per cycle in ``workdir/l<n>``."""

    name = "libvirt"

    def __init__(self, guest: Guest, workdir: Path, driver: Driver) -> None:
        self.guest = guest
        self.workdir = workdir
        self.driver = driver
        self.domain = ""
        self.folder = workdir

    @property
    def _saved(self) -> Path:
        return self.folder / "saved.state"

    async def define(self, index: int) -> None:
        self.domain = f"{DOMAIN_PREFIX}{os.getpid()}-{index}"
        self.folder = self.workdir / f"l{index}"
        self.folder.mkdir(parents=True)
        xml = domain_xml(self.guest, self.domain, self.folder)
        self.driver.define(self.folder / "domain.xml", xml)

    async def start(self) -> None:
        self.driver.call("start", self.domain)

    async def wait_ready(self) -> None:
        await wait_for_marker(self.folder / "com1.log")

    async def pause(self) -> None:
        self.driver.call("suspend", self.domain)

    async def resume(self) -> None:
        self.driver.call("resume", self.domain)

    async def save(self) -> None:
        self.driver.call("save", self.domain, str(self._saved))

    async def after_save(self) -> None:
        return None

    async def restore(self) -> None:
        self.driver.restore(self._saved)

    async def turn_off(self) -> None:
        self.driver.call("destroy", self.domain)

    async def forget(self) -> None:
        self.driver.undefine(self.domain)
        self.domain = ""
        for path in self.folder.glob("*"):
            path.unlink(missing_ok=True)
        self.folder.rmdir()

    async def close(self) -> None:
        if self.domain:
            self.driver.undefine(self.domain)
        self.driver.close()
