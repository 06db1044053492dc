"""Provisioning VMs from a template — the one code path behind ``viridian vm new NAME
--template T`` (the documented way) and ``viridian template deploy T NAME`` (docs/api.md,
"Templates and provisioning"; POST /provision)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import click

from viridian.cli.client import job_outcome, open_client, wait_for_job

__all__ = ["TemplateOrder", "provision", "template_options"]


@dataclass(frozen=True)
class TemplateOrder:
    """What to provision besides the name: the template and the guest customisation."""

    template: str | None
    count: int
    full_copy: bool
    dry_run: bool
    switch: str | None
    ip: str | None
    gateway: str | None
    user: str | None
    ssh_keys: tuple[str, ...]
    runcmd: tuple[str, ...]
    host_group: str | None = None

    def only_with_template(self) -> list[str]:
        """The options given that mean something only with a template."""
        given = {"--count": self.count != 1, "--full-copy": self.full_copy,
                 "--dry-run": self.dry_run, "--switch": self.switch, "--ip": self.ip,
                 "--gateway": self.gateway, "--user": self.user, "--ssh-key": self.ssh_keys,
                 "--run": self.runcmd, "--host-group": self.host_group}
        return [name for name, value in given.items() if value]


_OPTIONS = (
    click.option("--count", type=click.IntRange(1, 100), default=1,
                 help="How many VMs (NAME-1..NAME-N when more than one)."),
    click.option("--full-copy", is_flag=True, help="Copy the disks instead of overlays."),
    click.option("--dry-run", is_flag=True, help="Only show the placement ratings."),
    click.option("--switch", default=None, help="Virtual switch for the network adapters."),
    click.option("--ip", default=None, help="Static address of the first VM (CIDR)."),
    click.option("--gateway", default=None, help="Gateway for --ip."),
    click.option("--user", default=None, help="User to create in the guest."),
    click.option("--ssh-key", "ssh_keys", multiple=True, help="Authorized key of --user."),
    click.option("--run", "runcmd", multiple=True,
                 help="Command the guest runs (repeatable)."),
    click.option("--host-group", default=None, metavar="PATH",
                 help="Place only on hosts of this host group (see 'viridian hostgroup')."),
)
_FIELDS = ("count", "full_copy", "dry_run", "switch", "ip", "gateway", "user", "ssh_keys",
           "runcmd", "host_group")


def template_options(template: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the provisioning options to a command; its callback gets them as one
    ``order: TemplateOrder`` (with ``--template T`` too when ``template``)."""
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            fields = {k: kwargs.pop(k) for k in _FIELDS}
            chosen = kwargs.pop("template") if template else kwargs["template"]
            return command(*args, order=TemplateOrder(chosen, **fields), **kwargs)
        options = (click.option(
            "--template", default=None, metavar="T",
            help="Provision from template T (see 'viridian template list')."), *_OPTIONS) \
            if template else _OPTIONS
        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper
    return decorate


def provision(ctx: click.Context, name: str, order: TemplateOrder,
              memory_mb: int | None = None) -> None:
    """POST /provision and print every host's placement rating for one VM (0-5 stars and
    why), then where the VMs go (``split: HOST — N VMs (stars): names``, one line per host
    of the split, or why the hosts cannot take them); without ``--dry-run`` wait for the
    job and print the VMs made and the host each runs on."""
    body: dict[str, Any] = {k: v for k, v in asdict(order).items() if v is not None}
    body.update(name=name, ssh_keys=list(order.ssh_keys), runcmd=list(order.runcmd))
    if memory_mb is not None:
        body["memory_mb"] = memory_mb
    client = open_client(ctx)
    answer = client.post("/provision", body)
    plan = answer if order.dry_run else job_outcome(
        wait_for_job(client, answer, lambda _job: None))["result"]
    for rating in plan["ratings"]:
        click.echo(f"{rating['host']}: {'*' * rating['stars'] or '0 stars'} — "
                   + "; ".join(rating["reasons"]))
    split = plan.get("split", [])
    for share in split:
        vms = "1 VM" if share["count"] == 1 else f"{share['count']} VMs"
        click.echo(f"split: {share['host']} — {vms} ({'*' * share['stars']}): "
                   + ", ".join(share["vms"]))
    if plan.get("refused"):
        click.echo("refused: " + plan["refused"])
    if not order.dry_run:  # each share's host (another cluster member: forwarded)
        made = set(plan["vms"])
        where = [(s["host"], [n for n in s["vms"] if n in made]) for s in split] or [
            (plan["host"], plan["vms"])]
        click.echo("provisioned: " + "; ".join(
            ", ".join(names) + f" on host {host}" for host, names in where if names))


def new_from_template(ctx: click.Context, name: str, order: TemplateOrder,
                      memory_mb: int | None, others: dict[str, object]) -> bool:
    """``vm new``'s template branch: provision and return True when ``--template`` is
    given; False for a plain ``vm new``.

    :raises click.UsageError: provisioning options without ``--template``, or ``--template``
        with options the template decides (``others``: option name → value given).
    """
    if order.template is None:
        stray = order.only_with_template()
        if stray:
            raise click.UsageError(f"{', '.join(stray)} need --template T (provisioning "
                                   "from a template; see 'viridian template list')")
        return False
    clash = [option for option, value in others.items() if value is not None]
    if clash:
        raise click.UsageError(f"{', '.join(clash)} cannot be used with --template: the "
                               "template's settings and disks are used (--memory may "
                               "change the memory)")
    provision(ctx, name, order, memory_mb)
    return True
