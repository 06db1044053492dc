"""The shell: reading the host's network state and applying plans, through iproute2.

Why iproute2 and not a netlink library: a plan is a list of the very commands an admin
would type (the golden tests show them), ``ip -batch -``/``bridge -batch -`` apply a
whole plan in one process each (≈2 ms), ``-j`` output parses without scraping, and no
new dependency is needed. All of it is netlink underneath.

Every failure becomes :class:`~viridian.errors.HostError` naming the command that
failed and what the kernel said.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from viridian.errors import HostError
from viridian.network.desired import BridgeVlan, DesiredState
from viridian.network.nat import DNSMASQ, dnsmasq_argv
from viridian.network.observed import (
    ObservedState,
    parse_addresses,
    parse_bridge_vlans,
    parse_links,
    parse_routes,
)
from viridian.network.plan import Op

__all__ = ["HostNetwork", "has_net_admin"]

PROC_SYS = Path("/proc/sys")
CAP_NET_ADMIN = 12
_FAILED_LINE = re.compile(r"Command failed -:(\d+)")


def has_net_admin() -> bool:
    """Whether this process may change the host's network (CAP_NET_ADMIN)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def _run(argv: Sequence[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise HostError(f"cannot run {argv[0]}: {err}", command=" ".join(argv)) from err
    if done.returncode != 0:
        raise HostError(
            f"{' '.join(argv)} failed: {done.stderr.strip()}",
            command=" ".join(argv),
            stderr=done.stderr.strip(),
        )
    return done.stdout


def _json(argv: Sequence[str]) -> list[dict[str, Any]]:
    out = _run(argv).strip()
    data = json.loads(out) if out else []
    return data if isinstance(data, list) else []


class HostNetwork:
    """The host's links, addresses, routes and sysctls; NAT rules; dnsmasq processes."""

    # --- reading --------------------------------------------------------------------

    def observe(self, desired: DesiredState | None = None) -> ObservedState:
        links = parse_links(_json(["ip", "-j", "-d", "link", "show"]))
        vlans: frozenset[BridgeVlan] = frozenset()
        if desired is None or desired.vlan_filtering:
            bridges = [n for n, lk in links.items() if lk.kind == "bridge"]
            vlans = parse_bridge_vlans(_json(["bridge", "-j", "vlan", "show"]), bridges)
        routes = parse_routes(_json(["ip", "-j", "route", "show", "table", "main"]), 4)
        routes += parse_routes(_json(["ip", "-6", "-j", "route", "show", "table", "main"]), 6)
        keys = [key for key, _ in desired.sysctls] if desired else []
        return ObservedState(
            links=links,
            vlans=vlans,
            routes=routes,
            addresses=parse_addresses(_json(["ip", "-j", "addr", "show"])),
            sysctls=self.read_sysctls(keys),
        )

    @staticmethod
    def read_sysctls(keys: Iterable[str]) -> dict[str, str]:
        values = {}
        for key in keys:
            try:
                values[key] = (PROC_SYS / key).read_text().strip()
            except OSError:
                continue
        return values

    # --- changing -------------------------------------------------------------------

    def apply(self, ops: Sequence[Op]) -> None:
        """Run ``ops`` in order; consecutive ``ip``/``bridge`` ops go in one batch.

        :raises HostError: naming the first command that failed; the ops before it
            are done, the ones after it are not (the next reconcile plans again).
        """
        start = 0
        while start < len(ops):
            end = start
            while end < len(ops) and ops[end].tool == ops[start].tool:
                end += 1
            self._run_group(ops[start:end])
            start = end

    def _run_group(self, ops: Sequence[Op]) -> None:
        if ops[0].tool == "sysctl":
            for op in ops:
                self._write_sysctl(op)
            return
        script = "".join(" ".join(op.args) + "\n" for op in ops)
        try:
            done = subprocess.run(
                [ops[0].tool, "-batch", "-"],
                input=script,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise HostError(f"cannot run {ops[0].tool}: {err}") from err
        if done.returncode != 0:
            failed = _FAILED_LINE.search(done.stderr)
            op = ops[int(failed.group(1)) - 1] if failed else ops[0]
            why = _FAILED_LINE.sub("", done.stderr).strip()
            raise HostError(f"'{op.text()}' failed: {why}", command=op.text(), stderr=why)

    @staticmethod
    def _write_sysctl(op: Op) -> None:
        key, value = op.args
        try:
            (PROC_SYS / key).write_text(value + "\n")
        except OSError as err:
            raise HostError(f"'{op.text()}' failed: {err}", command=op.text()) from err

    # --- NAT --------------------------------------------------------------------------

    def apply_ruleset(self, script: str, needed: bool) -> None:
        """Load an nft script; without ``nft`` installed this is an error only when
        NAT rules are ``needed`` (apt package nftables)."""
        if shutil.which("nft") is None:
            if needed:
                raise HostError(
                    "NAT switches need nftables: the 'nft' command is missing "
                    "(apt-get install nftables)"
                )
            return
        _run(["nft", "-f", "-"], stdin=script)

    @staticmethod
    def dnsmasq_pid(folder: Path) -> int | None:
        """The pid of the dnsmasq serving ``folder``'s switch, if it runs."""
        try:
            pid = int((folder / "dnsmasq.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if f"--pid-file={folder / 'dnsmasq.pid'}".encode() in cmdline else None

    def ensure_dnsmasq(self, bridge: str, subnet: str, folder: Path) -> int:
        """Start dnsmasq for the switch unless it already runs; returns its pid."""
        pid = self.dnsmasq_pid(folder)
        if pid is not None:
            return pid
        if shutil.which(DNSMASQ) is None:
            raise HostError(
                "NAT switches need dnsmasq for DHCP/DNS: the 'dnsmasq' command "
                "is missing (apt-get install dnsmasq-base)"
            )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "dnsmasq.pid").unlink(missing_ok=True)
        _run(dnsmasq_argv(bridge, subnet, folder))  # forks; the parent exits at once
        pid = self.dnsmasq_pid(folder)
        if pid is None:
            raise HostError(f"dnsmasq for {bridge} did not start (no pid file in {folder})")
        return pid

    def stop_dnsmasq(self, folder: Path) -> None:
        pid = self.dnsmasq_pid(folder)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        (folder / "dnsmasq.pid").unlink(missing_ok=True)
