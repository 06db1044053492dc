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
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing apt packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
