#!/usr/bin/env bash
# Installs what viridian needs on a Debian 12 host, idempotently and quickly when
# nothing is missing: apt packages (only the missing ones) and the virtual environment
# (re-installed only when pyproject.toml changed).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  qemu-system-x86 qemu-utils            # the hypervisor and qemu-img
  busybox-static cpio kmod              # guest kit: userland, initramfs, module deps
  isolinux syslinux syslinux-common     # guest kit: bootloaders (ISO and disk)
  xorriso mtools dosfstools fdisk       # guest kit: ISO and FAT images without loop mounts
  qemu-guest-agent                      # guest kit: integration services inside guests
  ipxe                                  # legacy adapter network boot (iPXE, GPL-2)
  iproute2 python3-venv
  dnsmasq-base nftables                 # NAT switches: DHCP/DNS for VMs, masquerading
  chromium                              # planner and console tests: a real browser
  tesseract-ocr                         # console test: reads the guest's boot text in a screenshot
  openssl                               # Redfish test: self-signed certificate of its TLS listener
  slapd ldap-utils                      # access tests: a real OpenLDAP the tests start themselves
  passwd libpam-modules                 # access tests: real local accounts (useradd) checked by PAM
  e2fsprogs                             # templates: offline guest generalisation (debugfs)
)
# slapd: install the programs only; the host's /etc/ldap stays unconfigured (tests run their own).
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections 2>/dev/null || true

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing apt packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # the packaged slapd never serves on the host: the access tests start their own
  if [[ " ${missing[*]} " == *" slapd "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now slapd >/dev/null 2>&1 || true
  fi
fi

# etcd >= 3.5.13 for the failover cluster (issue 15; Debian 12's 3.4.23 has the lease bug
# etcd#15247): Debian 13's etcd-server/etcd-client (they depend only on adduser and libc6),
# pinned alone from trixie (the rest of trixie at priority 1: never chosen). The packaged
# service is never started: tests and `viridian cluster` run their own members.
etcd_ok() { command -v etcd >/dev/null && dpkg --compare-versions "$(dpkg-query -W -f='${Version}' etcd-server 2>/dev/null || echo 0)" ge 3.5.13; }
if ! etcd_ok; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing etcd-server >= 3.5.13 from Debian 13 (pinned)"
  printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: trixie' 'Components: main' \
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
    | $SUDO tee /etc/apt/sources.list.d/viridian-trixie.sources >/dev/null
  printf '%s\n' 'Package: *' 'Pin: release n=trixie' 'Pin-Priority: 1' '' \
    'Package: etcd-server etcd-client' 'Pin: release n=trixie' 'Pin-Priority: 990' \
    | $SUDO tee /etc/apt/preferences.d/viridian-etcd >/dev/null
  $SUDO apt-get update -qq
  policy_made=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d; policy_made=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -t trixie etcd-server etcd-client >/dev/null
  [ -z "$policy_made" ] || $SUDO rm -f /usr/sbin/policy-rc.d
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi

# The guest kernel is taken from Debian's linux-image-amd64 package, unpacked into the
# guest kit's cache (never installed on the host): see viridian.guestkit.

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# Byte-compile the package as a packaged install would (pip compiles a wheel's modules,
# Debian's packages at postinst): an editable install compiles nothing, and where
# PYTHONDONTWRITEBYTECODE is set (CI machines) every `viridian` command would compile its
# modules again at each start — 20–25 ms of a `disk convert` (docs/architecture.md, "CLI
# latency"). A no-op (~60 ms) when the bytecode is up to date.
.venv/bin/python -m compileall -q src/viridian
