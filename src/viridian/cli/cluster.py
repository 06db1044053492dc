"""``viridian cluster create|join|leave|show`` (docs/api.md, "Cluster"; README)."""

from __future__ import annotations

import os
from typing import Any

import click

from viridian.cli.client import open_client
from viridian.cli.output import emit_json

__all__ = ["cluster_group", "format_cluster", "format_validation"]

json_option = click.option("--json", "as_json", is_flag=True, help="Print the API object.")


def _membership_options(command: Any) -> Any:
    for option in reversed([
        click.option("--etcd", required=True, metavar="URL[,URL...]",
                     help="etcd client endpoints (http://HOST:PORT), tried in turn."),
        click.option("--name", "cluster", default="viridian", show_default=True,
                     help="The cluster's name (many clusters may share one etcd)."),
        click.option("--host", metavar="NAME", help="This host's name in the cluster "
                     "(default: the machine's host name)."),
        click.option("--site", default="", metavar="SITE", help="This host's site."),
        click.option("--shared", metavar="DIR[,DIR...]", default="",
                     help="The cluster's shared folders: HA VMs' folders and disks must be "
                          "in one (join: default the cluster's)."),
        click.option("--etcd-site", "etcd_sites", multiple=True, metavar="URL=SITE",
                     help="The site of the etcd member at URL (repeat per member; join: "
                          "default the cluster's)."),
        click.option("--lease-ttl", type=int, default=10, show_default=True, metavar="S",
                     help="Seconds without renewal after which the host counts as failed."),
        click.option("--watchdog", is_flag=True,
                     help="Also feed /dev/watchdog (only if such a device exists)."),
        json_option,
    ]):
        command = option(command)
    return command


def _etcd_sites(pairs: tuple[str, ...]) -> dict[str, str]:
    sites: dict[str, str] = {}
    for pair in pairs:
        url, sep, site = pair.rpartition("=")
        if not sep or not url or not site:
            raise click.BadParameter(f"{pair!r} is not URL=SITE (e.g. "
                                     "http://10.0.0.1:2379=east)", param_hint="--etcd-site")
        sites[url] = site
    return sites


def _body(etcd: str, cluster: str, host: str | None, site: str, lease_ttl: int,
          watchdog: bool, shared: str, etcd_sites: tuple[str, ...]) -> dict[str, Any]:
    body: dict[str, Any] = {"etcd": etcd, "name": cluster, "site": site,
                            "lease_ttl": lease_ttl, "watchdog": watchdog,
                            "etcd_sites": _etcd_sites(etcd_sites),
                            "shared": [os.path.abspath(os.path.expanduser(part.strip()))
                                       for part in shared.split(",") if part.strip()]}
    if host:
        body["host"] = host
    return body


@click.group("cluster")
def cluster_group() -> None:
    """The failover cluster (etcd): membership, hosts, highly available VMs."""


@cluster_group.command("create")
@_membership_options
@click.pass_context
def create(ctx: click.Context, /, as_json: bool, **options: Any) -> None:
    """Create a cluster in etcd and make this host its first member."""
    _show(open_client(ctx).post("/cluster", _body(**options)), as_json)


@cluster_group.command("join")
@_membership_options
@click.pass_context
def join(ctx: click.Context, /, as_json: bool, **options: Any) -> None:
    """Join an existing cluster."""
    _show(open_client(ctx).post("/cluster/join", _body(**options)), as_json)


@cluster_group.command("leave")
@json_option
@click.pass_context
def leave(ctx: click.Context, as_json: bool) -> None:
    """Leave the cluster (refused while HA VMs run here: drain first)."""
    answer = open_client(ctx).post("/cluster/leave")
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"host {answer['host']} left cluster {answer['left']}")


@cluster_group.command("show")
@json_option
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """Hosts (Up, Down, Paused), their free memory and VMs, HA VMs and etcd health."""
    _show(open_client(ctx).get("/cluster"), as_json)


@cluster_group.command("validate")
@json_option
@click.pass_context
def validate(ctx: click.Context, as_json: bool) -> None:
    """Validate the cluster (Hyper-V's "Validate a Configuration"): etcd quorum, latency
    and failure domains, clock skew, shared storage from every host, CPU compatibility,
    memory for N+1. Exit status 1 when a check fails."""
    report = open_client(ctx).post("/cluster/validate")
    if as_json:
        emit_json(report)
    else:
        click.echo(format_validation(report))
    if report["status"] == "fail":
        ctx.exit(1)


def format_validation(report: dict[str, Any]) -> str:
    """The text ``cluster validate`` prints: one line per check, then the verdict."""
    lines = [f"cluster {report['cluster']} validated from {report['host']} "
             f"({report['duration_s']:g} s)"]
    for check in report["checks"]:
        lines.append(f"{check['status'].upper():<5} {check['name']}: {check['summary']}")
    verdict = {"pass": "every check passed", "warn": "passed with warnings",
               "fail": "FAILED"}[report["status"]]
    lines.append(f"result: {verdict}")
    return "\n".join(lines)


def _show(cluster: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(cluster)
    else:
        click.echo(format_cluster(cluster))


def _mb(value: Any) -> str:
    return "-" if value is None else f"{value} MB"


def format_cluster(c: dict[str, Any]) -> str:
    """The text ``cluster show`` prints."""
    etcd = c["etcd"]
    lines = [f"cluster {c['name']} (this host: {c['host']}, lease TTL {c['lease_ttl']} s, "
             f"fence margin {c['fence_margin_s']:g} s)",
             f"shared folders: {', '.join(c.get('shared') or []) or '- (none named)'}",
             f"etcd: {etcd['healthy']}/{len(etcd['members'])} members healthy"]
    for m in etcd["members"]:
        state = "healthy" if m.get("healthy") else f"unreachable ({m.get('error', '?')})"
        leader = ", leader" if m.get("is_leader") else ""
        lines.append(f"  {m.get('endpoint', '?'):<28} site {m.get('site') or '-':<10} "
                     f"{state}{leader}")
    if c["agent"].get("error"):
        lines.append(f"agent: {c['agent']['error']}")
    lines.append(f"{'HOST':<16} {'STATE':<8} {'SITE':<10} {'FREE':>10}  VMS")
    for h in c["hosts"]:
        lines.append(f"{h['name']:<16} {h['state']:<8} {h.get('site') or '-':<10} "
                     f"{_mb(h['memory_free_mb']):>10}  {', '.join(h['running_vms']) or '-'}")
    if c["vms"]:
        lines.append(f"{'HA VM':<16} {'OWNER':<16} WANTED")
        for vm in c["vms"]:
            wanted = "running" if vm["desired_running"] else "off"
            pending = f"  {vm['pending']}" if vm.get("pending") else ""
            lines.append(f"{vm['name']:<16} {vm['owner'] or '-':<16} {wanted}{pending}")
            if vm.get("placed"):
                lines.append(f"  placed on {vm['placed']}")
    return "\n".join(lines)
