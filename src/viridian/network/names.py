"""Names of the host interfaces that belong to virtual switches.

Linux interface names have at most 15 bytes (IFNAMSIZ 16), switch names up to 100
characters: so bridges are numbered. ``tag`` is four hex digits fixed per data folder
(several services on one host never share names); ``number`` is the switch's number.

- ``vs<tag><n>`` — the switch's bridge (its host interface where the host has one)
- ``vs<tag><n>v<vid>`` — VLAN ``vid``'s bridge (``bridge_per_vlan`` mode)
- ``vs<tag><n>u<vid>`` — the external adapter's 802.1Q link for VLAN ``vid``
- ``vt<id10>n<i>`` — the tap of adapter ``i`` of a VM (:func:`tap_name`, from its id);
  the QEMU renderer takes the name from here

Every interface the service creates carries an alias (``ip link set .. alias``) starting
``viridian:<tag>:``; only such interfaces are ever removed as leftovers.
"""

from __future__ import annotations

__all__ = [
    "alias_prefix",
    "bridge_name",
    "port_alias",
    "switch_alias",
    "tap_name",
    "uplink_vlan_name",
    "vlan_bridge_name",
]

# Aliases carry numbers and ids only (never user text): ``ip -batch`` needs no quoting.


def tap_name(vm_id: str, index: int) -> str:
    """The tap of adapter ``index`` of VM ``vm_id``: ``vt`` + the first 10 hex digits of
    the VM's UUID + ``n<index>`` (at most 15 characters, Linux's IFNAMSIZ - 1)."""
    return f"vt{vm_id.replace('-', '')[:10]}n{index}"


def bridge_name(tag: str, number: int) -> str:
    return f"vs{tag}{number}"


def vlan_bridge_name(tag: str, number: int, vid: int) -> str:
    return f"vs{tag}{number}v{vid}"


def uplink_vlan_name(tag: str, number: int, vid: int) -> str:
    return f"vs{tag}{number}u{vid}"


def alias_prefix(tag: str) -> str:
    return f"viridian:{tag}:"


def switch_alias(tag: str, number: int) -> str:
    return f"{alias_prefix(tag)}switch:{number}"


def port_alias(tag: str, vm_id: str, nic: int) -> str:
    return f"{alias_prefix(tag)}port:{vm_id}:{nic}"
