"""``viridian serve``: wire the manager, the API and uvicorn together.

Host-wide settings come from ``<data>/host.json`` (all optional)::

    {"accelerator": "auto" | "kvm" | "tcg",     # auto = probe KVM for real, fall back to TCG
     "host_reserve_mb": 512,                     # memory kept for the host (admission)
     "virtual_processor_ratio": 8,               # max running VPs per logical processor
     "transport": "auto" | "https" | "http",     # auto = HTTPS unless loopback (tls.py)
     "tls_certificate": "/path/cert.pem",        # the admin's own certificate and key
     "tls_key": "/path/key.pem",
     "confine_qemu": true}                       # QEMU/storage daemons as per-VM users

``$VIRIDIAN_ACCELERATOR`` overrides ``accelerator``; ``$VIRIDIAN_CONFINE_QEMU`` (1/0)
overrides ``confine_qemu``. ``confine_qemu`` is on by default (:data:`CONFINE_DEFAULT`);
:func:`choose_confinement` says what happens when the host cannot confine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import uvicorn

from viridian.errors import HostError, InvalidSetting
from viridian.host.admission import DEFAULT_HOST_RESERVE_MB, DEFAULT_VP_RATIO, AdmissionPolicy
from viridian.host.resources import read_boot_id
from viridian.qemu.capabilities import HostCapabilities
from viridian.qemu.confinement import Confinement
from viridian.qemu.confinement import install as install_confinement
from viridian.qemu.probe import probe_accelerator
from viridian.service.app import create_app
from viridian.service.auth import load_or_create_token
from viridian.service.confinement_grants import ConfinementGrants
from viridian.service.core import ServiceCore
from viridian.service.tls import Transport, choose_transport

log = logging.getLogger("viridian")
ACCELERATORS = ("auto", "kvm", "tcg")
PLAIN_HTTP = Transport("http")
CONFINE_DEFAULT = True
"""Host setting ``confine_qemu`` (docs/architecture.md, "Security"): QEMU and storage
daemons as per-VM unprivileged users (viridian.qemu.confinement)."""
CONFINE_CHOICES = "true, false"
STORAGE_DAEMON_CHOICES = ("vhd", "off")
"""``vhd`` (the default): VMs with VHD/VHDX disks get a storage daemon; ``off`` opts out
(docs/architecture.md, "The storage daemon")."""


def load_host_settings(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "host.json"
    settings: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    settings.setdefault("accelerator", "auto")
    settings["accelerator"] = os.environ.get("VIRIDIAN_ACCELERATOR", settings["accelerator"])
    if settings["accelerator"] not in ACCELERATORS:
        raise InvalidSetting("accelerator", settings["accelerator"], ", ".join(ACCELERATORS))
    settings.setdefault("host_reserve_mb", DEFAULT_HOST_RESERVE_MB)
    settings.setdefault("virtual_processor_ratio", DEFAULT_VP_RATIO)
    settings.setdefault("confine_qemu", None)  # None: not set, CONFINE_DEFAULT applies
    override = os.environ.get("VIRIDIAN_CONFINE_QEMU")  # "1"/"0": tests run either way
    if override in ("0", "1"):
        settings["confine_qemu"] = override == "1"
    if not isinstance(settings["confine_qemu"], bool | None):
        raise InvalidSetting("confine_qemu", settings["confine_qemu"], CONFINE_CHOICES)
    settings.setdefault("storage_daemon", "vhd")
    if settings["storage_daemon"] not in STORAGE_DAEMON_CHOICES:
        raise InvalidSetting("storage_daemon", settings["storage_daemon"],
                             ", ".join(STORAGE_DAEMON_CHOICES))
    return settings


def storage_daemon_binary(choice: str) -> str | None:
    """The ``qemu-storage-daemon`` to serve VHD/VHDX disks with (host setting
    ``storage_daemon``: ``vhd``, the default), or None (``off``: QEMU opens them itself;
    docs/architecture.md, "The storage daemon"). Raises :class:`HostError` when ``vhd`` is
    asked for and the binary is missing."""
    if choice == "off":
        return None
    found = shutil.which("qemu-storage-daemon")
    if found is None:
        raise HostError("host setting storage_daemon is 'vhd' (the default) but "
                        "qemu-storage-daemon is not "
                        "installed (Debian package qemu-system-common); install it or set "
                        "\"storage_daemon\": \"off\" in host.json")
    return found


def confinement_blocker() -> str | None:
    """Why this host cannot run QEMU as per-VM users, or None when it can."""
    if os.geteuid() != 0:
        return (f"the service runs as uid {os.geteuid()}, not root, so it cannot start "
                "processes as other users")
    if shutil.which("setpriv") is None:
        return "setpriv (Debian package util-linux) is not installed"
    return None


def choose_confinement(data_dir: Path, setting: bool | None,
                       blocker: str | None) -> tuple[Confinement | None, str | None]:
    """The confinement to install for host setting ``confine_qemu`` (None: not set, so
    :data:`CONFINE_DEFAULT`) on a host that cannot confine for ``blocker`` (None: it can),
    and why QEMU is not confined when the default asked for it.

    An admin who set ``confine_qemu: true`` is refused a start rather than silently
    unconfined; the default on a host that cannot confine (a service run as a normal
    user, no setpriv) runs QEMU as the service's own user, with a warning in the log and
    the reason in ``GET /host`` (``confinement``).

    :raises HostError: ``confine_qemu`` was set to true and the host cannot confine."""
    wanted = CONFINE_DEFAULT if setting is None else setting
    if not wanted:
        return None, None
    if blocker is None:
        return Confinement(data_dir), None
    if setting is not None:
        raise HostError(f"host setting confine_qemu is true but {blocker}; fix that, or "
                        "set \"confine_qemu\": false in host.json (or "
                        "VIRIDIAN_CONFINE_QEMU=0) to run QEMU unconfined")
    log.warning("QEMU and storage daemons run unconfined, as the service's own user "
                "(confine_qemu is on by default, but %s); set \"confine_qemu\": false in "
                "host.json to silence this", blocker)
    return None, blocker


async def probe_once_per_boot(data_dir: Path, override: str) -> HostCapabilities:
    """The accelerator probe (≈3 s when KVM hangs), cached in ``<data>/probe.json`` for
    the current host boot, override and QEMU binary; any change probes again."""
    key = {"boot_id": read_boot_id(), "override": override,
           "qemu": _binary_identity(HostCapabilities().qemu_binary)}
    cache = data_dir / "probe.json"
    try:
        cached = json.loads(cache.read_text())
        if cached["key"] == key:
            caps = cached["capabilities"]
            return HostCapabilities(caps["qemu_binary"], tuple(caps["qemu_version"]),
                                    caps["accelerator"], caps["machine"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    capabilities = await probe_accelerator(override)  # type: ignore[arg-type]
    tmp = cache.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump({"key": key, "capabilities": asdict(capabilities)}, file)
    os.replace(tmp, cache)
    return capabilities


def _binary_identity(binary: str) -> str:
    path = shutil.which(binary) or binary
    try:
        stat = os.stat(path)
    except OSError:
        return path
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


async def build_manager(data_dir: Path) -> ServiceCore:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    host = load_host_settings(data_dir)
    capabilities = await probe_once_per_boot(data_dir, host["accelerator"])
    capabilities = replace(capabilities,
                           storage_daemon=storage_daemon_binary(host["storage_daemon"]))
    confinement, unconfined_because = choose_confinement(data_dir, host["confine_qemu"],
                                                         confinement_blocker())
    install_confinement(confinement, unconfined_because)
    policy = AdmissionPolicy(host_reserve_mb=int(host["host_reserve_mb"]),
                             virtual_processor_ratio=int(host["virtual_processor_ratio"]))
    manager = ServiceCore(data_dir, capabilities, policy)
    if confinement is not None:  # grants follow the settings; removed VMs' go (Security)
        manager.capabilities = (*manager.capabilities, ConfinementGrants(confinement, manager))
    await manager.start()
    keep_private(data_dir)
    return manager


@dataclass(frozen=True)
class ListenerOptions:
    """``viridian serve``'s transport flags (docs/api.md, "Transport")."""

    insecure_http: bool = False
    cert_file: Path | None = None
    key_file: Path | None = None


async def run(data_dir: Path, host: str, port: int,
              listener: ListenerOptions | None = None) -> None:
    listener = listener or ListenerOptions()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    transport = choose_transport(data_dir, host, load_host_settings(data_dir),
                                 listener.insecure_http, listener.cert_file, listener.key_file)
    manager = await build_manager(data_dir)
    token = load_or_create_token(data_dir)
    app = create_app(manager, token)
    # Keep-alive longer than uvicorn's 5 s: a client reusing a connection just as the
    # server closes it idle sees "Server disconnected" (a race, seen on loaded hosts).
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            access_log=False, lifespan="off", timeout_keep_alive=75,
                            ssl_certfile=_optional(transport.cert_file),
                            ssl_keyfile=_optional(transport.key_file))
    server = uvicorn.Server(config)
    record_listen_address(data_dir, host, port, transport)
    if transport.warning:
        log.warning("%s", transport.warning)
    log.info("viridian serving on %s://%s:%d%s (data %s, accelerator %s)",
             transport.scheme, host, port, _certificate_note(transport), data_dir,
             manager.host.accelerator)
    try:
        await server.serve()
    finally:
        await manager.close()


def _optional(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _certificate_note(transport: Transport) -> str:
    if transport.fingerprint is None:
        return ""
    kind = "self-signed " if transport.self_signed else ""
    return f", {kind}certificate SHA-256 {transport.fingerprint}"


PRIVATE_FILES = ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm", "probe.json",
                 "host.json")


def keep_private(data_dir: Path) -> None:
    """The service's own files are 0600 (docs/architecture.md, "Security"); SQLite gives
    its -wal/-shm files the database's mode."""
    for name in PRIVATE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(data_dir / name, 0o600)


def record_listen_address(data_dir: Path, host: str, port: int,
                          transport: Transport = PLAIN_HTTP) -> None:
    """Write ``<data>/service.json`` (``host``, ``port``, ``pid``, ``scheme``,
    ``transport``; mode 0600, atomically).

    The CLI sends the local token only to this address (docs/api.md, "Authentication").
    """
    path = data_dir / "service.json"
    tmp = path.with_name(f".service.json.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump({"host": host, "port": port, "pid": os.getpid(),
                   "scheme": transport.scheme, "transport": transport.view()}, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


def serve(data_dir: Path, host: str, port: int,
          listener: ListenerOptions | None = None) -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(data_dir, host, port, listener))
