"""Host groups, pure and on a real SQLite access store (issue 18): paths are canonical
under "All Hosts"; ``hostgroup:PATH`` grants reach the group and the groups under it;
a group needs its parent, a host is in one group, and a group in use (child groups,
hosts, grants) is not removed; bad names are refused with the allowed form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from viridian.access.hostgroups import ROOT, HostGroups, normalise, within
from viridian.access.policy import Grant, Policy
from viridian.access.principal import Principal
from viridian.access.quotas import Resources
from viridian.access.roles import BUILTIN_ROLES
from viridian.access.scopes import Target, parse_scope, scope_covers
from viridian.access.store import AccessStore
from viridian.errors import BadRequest, Conflict, NotFound

PROD = "All Hosts/Prod"
RACK = "All Hosts/Prod/Rack1"


def test_paths_are_canonical() -> None:
    assert normalise("Prod/Rack1") == normalise(" All Hosts/Prod/Rack1/ ") == RACK
    assert normalise("All Hosts") == normalise("/All Hosts/") == ROOT
    for bad in ("", "Prod//Rack1", "Prod/../x", "Prod/All Hosts", "/-x"):
        with pytest.raises(ValueError, match="each part 1-64"):
            normalise(bad)
    assert within(RACK, PROD) and within(PROD, PROD) and within(RACK, ROOT)
    assert not within("All Hosts/Production", PROD) and not within(PROD, RACK)


def test_hostgroup_scope_reaches_the_subtree() -> None:
    assert parse_scope("hostgroup:Prod") == f"hostgroup:{PROD}"
    assert scope_covers(f"hostgroup:{PROD}", Target(template="web", host_group=RACK))
    assert not scope_covers(f"hostgroup:{RACK}", Target(template="web", host_group=PROD))
    assert not scope_covers(f"hostgroup:{PROD}", Target(template="web"))
    assert not scope_covers(f"hostgroup:{PROD}", Target(vm="x"))
    sam = Principal("sam", "local", "session")
    policy = Policy(BUILTIN_ROLES, [Grant(1, "Self-service user", "sam", f"hostgroup:{PROD}")])
    assert policy.allows(sam, "template.deploy", Target(template="any", host_group=RACK))
    assert not policy.allows(sam, "template.deploy", Target(template="any", host_group=ROOT))
    label = Target(template="web", host_group=ROOT).label()
    assert label == "template:web in host group All Hosts"


def test_tree_on_a_real_store(tmp_path: Path) -> None:
    store = AccessStore(tmp_path / "access.sqlite")
    try:
        groups = HostGroups(store)
        with pytest.raises(NotFound, match="no parent group 'All Hosts/Prod'"):
            groups.new("Prod/Rack1")
        groups.new("Prod")
        assert groups.new("All Hosts/Prod/Rack1")["parent"] == PROD
        with pytest.raises(Conflict, match="exists already"):
            groups.new("Prod")
        with pytest.raises(BadRequest, match="invalid host group path"):
            groups.new("Prod/a:b")
        assert groups.group_of("h1") == ROOT
        groups.add_host("h1", "Prod/Rack1")
        groups.add_host("h1", "Prod")  # one group: moved, not copied
        assert groups.group_of("h1") == PROD and groups.hosts() == {"h1": PROD}
        assert groups.show("Prod")["children"] == [RACK]
        with pytest.raises(BadRequest, match="invalid host name"):
            groups.add_host("bad/host", "Prod")
        with pytest.raises(Conflict, match="Rack1, host h1"):
            groups.remove("Prod", [])
        with pytest.raises(Conflict, match=f"a grant on hostgroup:{RACK}"):
            groups.remove("Prod/Rack1", [f"hostgroup:{RACK}"])
        assert groups.remove("Prod/Rack1", [])["removed"] == RACK
        groups.add_host("h1", ROOT)
        assert groups.remove("Prod", []) == {"removed": PROD}
        with pytest.raises(Conflict, match="root"):
            groups.remove(ROOT, [])
        assert HostGroups(store).paths() == [ROOT]  # kept in the store
    finally:
        store.close()


def test_a_group_quota_counts_the_users_vms_on_every_host_of_the_group(
        tmp_path: Path) -> None:
    """Issue 18: a quota on a host group limits the user's VMs on all its hosts — this
    host's and what the other cluster members report — not only the host asked."""
    from types import SimpleNamespace

    from viridian.access.quotas import Usage
    from viridian.errors import Forbidden
    from viridian.library.templates import TemplateManifest
    from viridian.service.library.selfservice import Requester, within_group_quotas
    from viridian.service.library.templates import StoredTemplate

    prod, test = "All Hosts/Prod", "All Hosts/Test"
    groups: Any = SimpleNamespace(
        quotas=lambda user: [{"group": prod, "limits": {"vms": 3}}],
        group_of={"h1": prod, "h2": prod, "h3": test}.__getitem__)
    access: Any = SimpleNamespace(owned=lambda user: ["mine-here"])
    who = Requester(access, Principal("gail", "pam", "session"))
    template = StoredTemplate(TemplateManifest("base", 1, "now", "src", {}, ()), "default",
                              tmp_path)

    def hosts(elsewhere: dict[str, Usage]) -> frozenset[str]:
        return within_group_quotas(who, groups, frozenset({"h1", "h2", "h3"}), "h1",
                                   template, 1, 64, lambda vm_id: Resources(64, 1, 0),
                                   elsewhere)

    assert hosts({}) == {"h1", "h2", "h3"}  # 1 VM here + 1 < 3
    assert hosts({"h2": Usage(1, 64, 1, 0), "h3": Usage(5, 320, 5, 0)}) == {"h1", "h2", "h3"}
    assert hosts({"h2": Usage(2, 128, 2, 0)}) == {"h3"}  # Prod: 1 + 2 used; Test: free
    with pytest.raises(Forbidden) as refused:
        within_group_quotas(who, groups, frozenset({"h1", "h2"}), "h1", template, 1, 64,
                            lambda vm_id: Resources(64, 1, 0), {"h2": Usage(2, 128, 2, 0)})
    assert f"gail (host group {prod})'s quota would be exceeded — VMs: 3 used + 1 " \
        "requested > limit 3" in refused.value.message
