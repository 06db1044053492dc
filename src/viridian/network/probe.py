"""Probing the kernel's switch features for real, in a throwaway network namespace.

``unshare --net`` gives the probe its own empty namespace: nothing it creates is ever
visible on the host, and it disappears with the probe's process (~20 ms). Each feature
is tried the way the switches use it; the kernel's answer is kept for messages.
"""

from __future__ import annotations

import subprocess

from viridian.network.features import KernelFeatures

__all__ = ["probe_features"]

_SCRIPT = """
ip link add vprobe0 type veth peer name vprobe1 || exit 9
ip link add vprobebr type bridge || exit 9
if ip link set vprobebr type bridge vlan_filtering 1 2>/tmp/.vprobe-err-$$; then
  echo filtering=yes; else echo "filtering=no $(cat /tmp/.vprobe-err-$$)"; fi
if ip link add link vprobe0 name vprobe0.10 type vlan id 10 2>/tmp/.vprobe-err-$$; then
  echo vlan=yes; else echo "vlan=no $(cat /tmp/.vprobe-err-$$)"; fi
rm -f /tmp/.vprobe-err-$$
"""


def probe_features(timeout_s: float = 10.0) -> KernelFeatures:
    """What this kernel offers; both False when the probe cannot run (no root)."""
    try:
        done = subprocess.run(
            ["unshare", "--net", "sh", "-c", _SCRIPT],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return KernelFeatures(False, False, (f"probe failed: {err}",))
    answers = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    if done.returncode != 0 or not answers:
        why = (done.stderr.strip() or f"exit status {done.returncode}")[:300]
        return KernelFeatures(False, False, (f"probe failed: {why}",))
    errors = tuple(f"{k}: {v[3:].strip()}" for k, v in answers.items() if v.startswith("no"))
    return KernelFeatures(
        answers.get("filtering", "").startswith("yes"),
        answers.get("vlan", "").startswith("yes"),
        errors,
    )
