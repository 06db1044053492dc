"""Self-service provisioning (SCVMM's self-service users; docs/architecture.md, "Access"):
who may see and deploy which template, and the quota of a whole provisioning request.

A caller other than the admin token deploys template ``T`` only with ``template.deploy``
on ``template:T`` (or the host) and sees only the templates it may read or deploy. Before
anything is made, the request's VMs (count times the template's startup memory, processors
and disk capacity) are added to what the caller's VMs use and refused past its quota with
used/requested/limit (:func:`viridian.access.quotas.check_quota`); each VM is then made
through the core's create path, whose quota hook counts it again and makes the caller its
owner (``service.access_hooks``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.requests import Request

from viridian.access import AccessControl, Principal, Target
from viridian.access.hostgroups import HostGroups, within
from viridian.access.quotas import Resources, Usage, check_quota, usage_of
from viridian.errors import Conflict, Forbidden
from viridian.service.auth import CURRENT_PRINCIPAL
from viridian.service.library.templates import StoredTemplate

__all__ = ["Requester", "needs_cluster_usage", "placeable", "requester",
           "within_group_quotas"]

MB = 1024 * 1024
DEPLOY, READ = "template.deploy", "library.read"


class Requester:
    """The principal of the request being served and the access rules that bind it
    (``access`` None: a service without the access gate, as in unit tests: all allowed)."""

    def __init__(self, access: AccessControl | None, principal: Principal | None) -> None:
        self.access, self.principal = access, principal

    @property
    def unlimited(self) -> bool:
        return self.access is None or self.principal is None or self.principal.bootstrap

    def may(self, operation: str, template: str, host_group: str | None = None) -> bool:
        if self.unlimited:
            return True
        assert self.access is not None and self.principal is not None
        return self.access.policy.allows(self.principal, operation,
                                         Target(template=template, host_group=host_group))

    def may_see(self, template: str) -> bool:
        """``library.read`` or ``template.deploy`` on the template (in any host group the
        caller has a grant on)."""
        groups: list[str | None] = [None]
        if not self.unlimited:
            assert self.access is not None
            groups += [g.scope.removeprefix("hostgroup:") for g in self.access.policy.grants
                       if g.scope.startswith("hostgroup:")]
        return any(self.may(op, template, g) for op in (READ, DEPLOY) for g in groups)

    def check_see(self, template: str) -> None:
        if not self.may_see(template):
            self.refuse(READ, template)

    def check_deploy(self, template: str) -> None:
        """Return when the caller may provision from ``template``; else 403 naming it."""
        if not self.may(DEPLOY, template):
            self.refuse(DEPLOY, template)

    def refuse(self, operation: str, template: str, host_group: str | None = None) -> None:
        """Raise the gate's 403 for ``operation`` on the template (in ``host_group``)."""
        assert self.access is not None and self.principal is not None
        self.access.authorize(self.principal, operation,
                              Target(template=template, host_group=host_group))

    def visible_vms(self, names: list[str], ids: Callable[[str], str | None]) -> list[str]:
        """The VM names of ``names`` the caller may see (``vm.read``: its own, granted
        ones); a template's ``used_by`` names no other user's VMs."""
        if self.unlimited:
            return names
        assert self.access is not None and self.principal is not None
        access, principal = self.access, self.principal
        return [n for n in names
                if access.policy.allows(principal, "vm.read", access.target(n, ids(n)))]

    def check_quota(self, template: StoredTemplate, count: int, memory_mb: int | None,
                    resources: Callable[[str], Resources | None]) -> None:
        """Refuse (403 with used/requested/limit) ``count`` VMs of ``template`` that would
        pass the caller's quota; nothing is made before this returns."""
        if self.unlimited:
            return
        assert self.access is not None and self.principal is not None
        user = self.principal.user
        limits = self.access.quota(user)
        if all(v is None for v in limits.values()):
            return
        one = template_resources(template, memory_mb)
        adding = Resources(one.memory_mb * count, one.processors * count, one.disk_mb * count)
        check_quota(user, limits, usage_of(self.access.owned(user), resources), adding, count)


def requester(request: Request) -> Requester:
    """The :class:`Requester` of ``request`` (its gate's principal and access rules)."""
    access = getattr(request.app.state, "access", None)
    return Requester(access if isinstance(access, AccessControl) else None,
                     CURRENT_PRINCIPAL.get())


def template_resources(template: StoredTemplate, memory_mb: int | None) -> Resources:
    """What one VM provisioned from ``template`` takes: startup memory (``memory_mb``
    when the request sets it), processors, and each disk's virtual size (an overlay is
    as large as its backing disk; a full copy too)."""
    from viridian.disks.inspect import inspect

    settings: dict[str, Any] = dict(template.manifest.settings)
    total = 0
    for disk in template.manifest.disks:
        try:
            total += inspect(str(template.disk_path(disk))).virtual_size
        except Exception:  # an unreadable disk counts by its recorded size
            total += disk.size
    return Resources(memory_mb or int(settings["memory"]["startup_mb"]),
                     int(settings.get("processor", {}).get("count", 1)), -(-total // MB))


def placeable(who: Requester, groups: HostGroups | None, template: str,
              group: str | None, hosts: list[str]) -> frozenset[str]:
    """The candidate ``hosts`` this request may place VMs on: in host group ``group`` (or
    under it; None: any group) and where the caller may deploy ``template``
    (``template.deploy`` on ``template:NAME``, on the host's ``hostgroup:PATH`` or on the
    host).

    :raises NotFound: no such host group.
    :raises Conflict: the group holds none of the candidate hosts (the message names them).
    :raises Forbidden: the caller may deploy ``template`` on none of them.
    """
    if groups is None:
        who.check_deploy(template)
        return frozenset(hosts)
    if group is not None:
        group = groups.show(group)["path"]
    placed = {h: groups.group_of(h) for h in hosts}
    inside = [h for h, g in placed.items() if group is None or within(g, group)]
    if not inside:
        where = ", ".join(f"{h} in {g}" for h, g in placed.items())
        raise Conflict(f"host group {group!r} holds none of the hosts ({where}); add one "
                       "with 'viridian hostgroup add-host'; nothing was changed", group=group)
    allowed = frozenset(h for h in inside if who.may(DEPLOY, template, placed[h]))
    if not allowed:
        who.refuse(DEPLOY, template, placed[inside[0]])
    return allowed


def needs_cluster_usage(who: Requester, groups: HostGroups | None) -> bool:
    """Whether a request of ``who`` is bounded by quotas scoped to host groups (then the
    caller's usage on the other cluster hosts counts: :func:`within_group_quotas`)."""
    if who.unlimited or groups is None or who.principal is None:
        return False
    return bool(groups.quotas(who.principal.user))


def _added(usages: Iterable[Usage]) -> Usage:
    total = Usage()
    for u in usages:
        total = Usage(total.vms + u.vms, total.memory_mb + u.memory_mb,
                      total.processors + u.processors, total.disk_mb + u.disk_mb)
    return total


def within_group_quotas(who: Requester, groups: HostGroups | None, hosts: frozenset[str],
                        here: str, template: StoredTemplate, count: int,
                        memory_mb: int | None,
                        resources: Callable[[str], Resources | None],
                        elsewhere: Mapping[str, Usage] | None = None) -> frozenset[str]:
    """The ``hosts`` where ``count`` VMs of ``template`` fit the caller's quotas scoped to
    host groups: a quota on group Q counts the caller's VMs on every host under Q — this
    host's (``here``) and, from ``elsewhere`` (host → the caller's usage there, asked of
    the members when :func:`needs_cluster_usage`), the other cluster hosts'.

    :raises Forbidden: they fit on none (the first refusal, with used/requested/limit).
    """
    if who.unlimited or groups is None:
        return hosts
    assert who.access is not None and who.principal is not None
    user = who.principal.user
    quotas = groups.quotas(user)
    if not quotas:
        return hosts
    one = template_resources(template, memory_mb)
    adding = Resources(one.memory_mb * count, one.processors * count, one.disk_mb * count)
    usage = {**(elsewhere or {}), here: usage_of(who.access.owned(user), resources)}
    kept: set[str] = set()
    refusal: Forbidden | None = None
    for host in sorted(hosts):
        group = groups.group_of(host)
        try:
            for quota in quotas:
                if within(group, quota["group"]):
                    used = _added(u for h, u in usage.items()
                                  if within(groups.group_of(h), quota["group"]))
                    check_quota(f"{user} (host group {quota['group']})", quota["limits"],
                                used, adding, count)
        except Forbidden as err:
            refusal = refusal or err
            continue
        kept.add(host)
    if not kept:
        assert refusal is not None
        raise refusal
    return frozenset(kept)
