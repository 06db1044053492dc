"""``viridian switch new|list|show|remove``: virtual switches (Hyper-V's Virtual Network
Manager). Adapters join a switch with ``viridian vm nic set NAME --switch S``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json, format_table

__all__ = ["format_switch_details", "format_switch_table", "switch_group"]

TYPES = ("external", "internal", "private", "nat")


def _path(name: str | None = None) -> str:
    return "/switches" if name is None else f"/switches/{quote(name, safe='')}"


def _vlan_text(port: dict[str, Any]) -> str:
    if port["mode"] == "trunk":
        allowed = ",".join(str(v) for v in port["trunk_vlans"])
        return f"trunk {allowed} (native {port['native_vlan'] or 1})"
    return f"access {port['vlan_id']}" if port["vlan_id"] else "untagged"


def format_switch_table(switches: list[dict[str, Any]]) -> str:
    rows = [
        (
            s["name"],
            s["type"],
            s["adapter"] or s["subnet"],
            s["host_address"],
            s["interface"],
            len(s["ports"]),
        )
        for s in switches
    ]
    return format_table(
        ("Name", "Type", "Adapter/Subnet", "Host address", "Interface", "Adapters"), rows
    )


def format_switch_details(switch: dict[str, Any]) -> str:
    features = switch.get("features") or {}
    lines = [
        f"Name:              {switch['name']}",
        f"Type:              {switch['type']}",
        f"Interface:         {switch['interface']}",
        f"Adapter:           {switch['adapter'] or '-'}",
        f"Subnet:            {switch['subnet'] or '-'}",
        f"Host address:      {switch['host_address'] or '-'}",
        f"VLAN mode:         {switch['vlan_mode']}"
        + (
            ""
            if features.get("bridge_vlan_filtering")
            else " (this kernel has no bridge VLAN filtering: trunks refused)"
        ),
    ]
    dhcp = switch.get("dhcp")
    if dhcp:
        lines.append(
            f"DHCP/DNS:          dnsmasq pid {dhcp['pid'] or '-'}, gateway "
            f"{dhcp['gateway']}, {len(dhcp['leases'])} lease(s)"
        )
        lines += [
            f"  lease            {x['address']}  {x['mac']}  {x['hostname'] or '-'}"
            for x in dhcp["leases"]
        ]
    if switch.get("last_error"):
        lines.append(f"Last error:        {switch['last_error']}")
    ports = [
        (p["vm"], p["nic"], p["kind"], p["mac"], _vlan_text(p), p["tap"] or "(VM not running)")
        for p in switch["ports"]
    ]
    table = (
        format_table(("VM", "Adapter", "Kind", "MAC", "VLAN", "Tap"), ports)
        if ports
        else "(no adapters connected)"
    )
    return "\n".join(lines) + "\n\n" + table


@click.group("switch")
def switch_group() -> None:
    """Virtual switches: external (bound to a host adapter), internal (VMs + host),
    private (VMs only), nat (internal + NAT + DHCP/DNS). Needs the service to run as
    root; otherwise connect adapters to 'user' (user-mode NAT)."""


@switch_group.command("new")
@click.argument("name")
@click.option("--type", "kind", type=click.Choice(TYPES), required=True, help="Switch type.")
@click.option("--adapter", metavar="IFACE", help="Host adapter to bind (external).")
@click.option(
    "--allow-management-os",
    is_flag=True,
    help="Allow binding the adapter that carries the host's default route.",
)
@click.option(
    "--subnet",
    metavar="CIDR",
    help="internal/nat: the host takes the first address (nat default: a free "
    "/24 of 172.30.0.0/16).",
)
@click.option("--notes", default="", help="Free text.")
@click.option("--json", "as_json", is_flag=True, help="Print the switch as JSON.")
@click.pass_context
def switch_new(
    ctx: click.Context,
    name: str,
    kind: str,
    adapter: str | None,
    allow_management_os: bool,
    subnet: str | None,
    notes: str,
    as_json: bool,
) -> None:
    """Create the virtual switch NAME."""
    body = {
        "name": name,
        "type": kind,
        "adapter": adapter,
        "allow_management_os": allow_management_os,
        "subnet": subnet,
        "notes": notes,
    }
    switch = open_client(ctx).post(_path(), body)
    if as_json:
        emit_json(switch)
        return
    where = switch["host_address"] or "no host address"
    click.echo(
        f"created {switch['type']} switch '{switch['name']}' "
        f"(interface {switch['interface']}, {where})"
    )


@switch_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the switches as JSON.")
@click.pass_context
def switch_list(ctx: click.Context, as_json: bool) -> None:
    """List the virtual switches."""
    switches = open_client(ctx).get(_path())["switches"]
    if as_json:
        emit_json(switches)
    elif switches:
        click.echo(format_switch_table(switches))
    else:
        click.echo("no virtual switches (create one: viridian switch new NAME --type ...)")


@switch_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the switch as JSON.")
@click.pass_context
def switch_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show the switch NAME with its adapters, VLANs and DHCP leases."""
    switch = open_client(ctx).get(_path(name))
    if as_json:
        emit_json(switch)
    else:
        click.echo(format_switch_details(switch))


@switch_group.command("remove")
@click.argument("name")
@click.pass_context
def switch_remove(ctx: click.Context, name: str) -> None:
    """Remove the switch NAME (refused while adapters use it)."""
    open_client(ctx).delete(_path(name))
    click.echo(f"removed switch '{name}'")
