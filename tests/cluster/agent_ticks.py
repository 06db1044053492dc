"""A host agent's ticks seen from outside the service (docs/architecture.md, "Failover
cluster: the agent loop"): each tick starts with a keepalive of the host's lease, and
after each answered one the fence feed (``<data>/cluster/fence.json``) carries a later
takeover time. Tests wait for ticks instead of sleeping: "``count`` more ticks" means the
agent has planned ``count`` - 1 whole times with what it read since the wait began."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from pathlib import Path


def takeover(data_dir: Path) -> float:
    """The fence feed's takeover time (``CLOCK_MONOTONIC``: send time of the last
    keepalive etcd answered + TTL); 0 before any."""
    with contextlib.suppress(OSError, ValueError):
        return float(json.loads((data_dir / "cluster" / "fence.json").read_text())
                     .get("takeover", 0))
    return 0.0


def wait_agent_ticks(data_dirs: Mapping[str, Path], count: int = 3,
                     timeout: float = 300.0) -> None:
    """Until the agent of every host (name → data folder) renewed its lease ``count`` more
    times. :raises AssertionError: naming the hosts, after ``timeout`` seconds."""
    seen = {name: [takeover(folder)] for name, folder in data_dirs.items()}
    deadline = time.monotonic() + timeout
    while True:
        for name, folder in data_dirs.items():
            now = takeover(folder)
            if now > seen[name][-1]:
                seen[name].append(now)
        if all(len(values) > count for values in seen.values()):
            return
        assert time.monotonic() < deadline, (
            f"timed out waiting for {count} agent ticks on {sorted(data_dirs)}: seen "
            + ", ".join(f"{name} {len(values) - 1}" for name, values in sorted(seen.items())))
        time.sleep(0.1)
