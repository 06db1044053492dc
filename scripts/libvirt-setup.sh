#!/usr/bin/env bash
# Make libvirt usable for bench/bench_lifecycle.py on a host without systemd (or with it).
#
#   scripts/libvirt-setup.sh [PYTHON]
#
# 1. installs libvirt (Debian: libvirt-daemon-system libvirt-clients, plus libvirt-dev and
#    pkg-config so the libvirt-python bindings can build) when `virsh` or `libvirtd` is missing;
# 2. configures the QEMU driver once (a marked block at the end of /etc/libvirt/qemu.conf):
#    QEMU runs as root without relabelling, as viridian's QEMU does, so libvirt never
#    chowns the shared guest-kit ISO;
# 3. starts virtlogd and libvirtd in the background when they are not running; libvirtd runs
#    under a small child-subreaper that reaps at once whatever exits below it: QEMU
#    processes are daemonized by libvirt, and libvirt waits for a stopped QEMU's pid to
#    vanish; a container's PID 1 may reap only every few seconds (on a systemd host PID 1
#    reaps at once, so this keeps the comparison fair);
# 4. with PYTHON given: installs the `libvirt-python` bindings (PyPI) into that interpreter's
#    environment when `import libvirt` fails there.
#
# Exits 0 when `virsh -c qemu:///system` answers; otherwise non-zero with the reason on stderr.
set -euo pipefail

PYTHON="${1:-}"
CONF=/etc/libvirt/qemu.conf
MARK="# --- viridian bench (scripts/libvirt-setup.sh) ---"
SOCKET=/run/libvirt/libvirt-sock
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

install_packages() {
  local wanted=(libvirt-daemon-system libvirt-clients libvirt-dev pkg-config)
  local missing=()
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "libvirt-setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

configure_qemu_driver() {
  grep -qF "$MARK" "$CONF" && return 1
  $SUDO tee -a "$CONF" >/dev/null <<EOF
$MARK
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
EOF
  return 0
}

# Zombies (exited, not yet reaped by a slow PID 1) do not count.
running() { pgrep -x -r R,S,D,I "$1" >/dev/null; }

# PR_SET_CHILD_SUBREAPER (36), run libvirtd in the foreground, reap every descendant at once.
REAPER='
import ctypes, os, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
child = os.fork()
if child == 0:
    os.execvp("libvirtd", ["libvirtd"])
while True:
    try:
        os.wait()
    except ChildProcessError:
        sys.exit(0)
'

start_libvirtd_under_reaper() {
  $SUDO setsid python3 -c "$REAPER" </dev/null >>/var/log/libvirt/bench-libvirtd.log 2>&1 &
}

start_daemons() {
  local changed="$1"
  if [ "$changed" = yes ] && running libvirtd; then
    echo "libvirt-setup: $CONF changed while libvirtd runs; restart libvirtd to apply it" >&2
  fi
  running virtlogd || $SUDO virtlogd -d
  running libvirtd || start_libvirtd_under_reaper
  for _ in $(seq 100); do
    [ -S "$SOCKET" ] && virsh -c qemu:///system uri >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "libvirt-setup: libvirtd does not answer on $SOCKET" >&2
  return 1
}

install_bindings() {
  [ -n "$PYTHON" ] || return 0
  "$PYTHON" -c "import libvirt" 2>/dev/null && return 0
  echo "libvirt-setup: installing libvirt-python into $PYTHON" >&2
  "$PYTHON" -m pip install -q libvirt-python >&2
}

install_packages
changed=no
if configure_qemu_driver; then changed=yes; fi
start_daemons "$changed"
install_bindings
