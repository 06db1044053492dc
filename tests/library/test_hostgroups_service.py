"""Host groups against a real service (issue 18; no guest boots: dry runs and refusals):
the tree made, shown and removed through the CLI (``viridian hostgroup``); this host
placed in "All Hosts/Prod/Rack1"; a user granted "Self-service user" on
``hostgroup:Prod`` sees the templates and may provision to this host while it is under
Prod (``vm new --template --host-group --dry-run``), and is refused (403 naming the
template and group) once the host is moved to "Test"; a group holding no host is
refused (409) for the admin too; a group in use is not removed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.cli.cli_harness import CLEAN_ENV
from tests.service.harness import Service, running_service, tiny_templates
from viridian.cli.main import cli

PROD, RACK, TEST = "All Hosts/Prod", "All Hosts/Prod/Rack1", "All Hosts/Test"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, httpx.Client]]:
    with running_service() as service, service.client() as api:
        tiny_templates(api, tmp_path_factory.mktemp("hostgroups"), "src", "base")
        for call in (api.post("/access/users", json={"name": "gail",
                                                     "password": "gail-password"}),):
            assert call.status_code == 201, call.text
        yield service, api


def run(service: Service, *args: str, token: str | None = None) -> Result:
    runner = CliRunner(env={**CLEAN_ENV, "VIRIDIAN_DATA_DIR": str(service.data_dir)})
    auth = ["--token", token] if token else []
    return runner.invoke(cli, ["--url", service.url, *auth, *args], prog_name="viridian",
                         catch_exceptions=False)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def gail(service: Service) -> httpx.Client:
    login = httpx.post(service.url + "/api/v1/access/login",
                       json={"user": "gail", "password": "gail-password"})
    assert login.status_code == 200, login.text
    return httpx.Client(base_url=service.url + "/api/v1", timeout=120, headers={
        "Authorization": f"Bearer {login.json()['token']}"})


def test_tree_through_the_cli(lab: tuple[Service, httpx.Client]) -> None:
    service, api = lab
    assert ok(run(service, "hostgroup", "new", "Prod")) == f"host group {PROD}\n"
    assert run(service, "hostgroup", "new", "Nope/Rack9").exit_code != 0
    ok(run(service, "hostgroup", "new", "All Hosts/Prod/Rack1"))
    ok(run(service, "hostgroup", "new", "Test"))
    bad = run(service, "hostgroup", "new", "Prod/a:b")
    assert bad.exit_code == 2 and "invalid host group path" in bad.stderr
    assert ok(run(service, "hostgroup", "add-host", "Prod/Rack1", "localhost")) == \
        f"localhost is in {RACK}\n"
    listed = json.loads(ok(run(service, "hostgroup", "list", "--json")))
    assert listed["hosts"] == {"localhost": RACK}
    assert [g["path"] for g in listed["groups"]] == ["All Hosts", PROD, RACK, TEST]
    shown = json.loads(ok(run(service, "hostgroup", "show", "Prod")))
    assert shown == {"path": PROD, "parent": "All Hosts", "children": [RACK], "hosts": []}
    busy = run(service, "hostgroup", "remove", "Prod/Rack1")
    assert busy.exit_code != 0 and "in use: host localhost" in busy.stderr
    ok(run(service, "hostgroup", "new", "Prod/Spare"))
    assert ok(run(service, "hostgroup", "remove", "Prod/Spare")) == \
        "removed host group All Hosts/Prod/Spare\n"
    assert api.get("/hostgroups/Prod/Spare").status_code == 404


def test_provisioning_follows_the_group_and_its_grants(lab: tuple[Service, httpx.Client]
                                                      ) -> None:
    service, api = lab
    assert api.post("/access/grants", json={"role": "Self-service user", "to": "gail",
                                            "on": "hostgroup:Prod"}).status_code == 201
    assert api.put("/hostgroups/hosts/localhost", json={"group": RACK}).status_code == 200
    login = httpx.post(service.url + "/api/v1/access/login",
                       json={"user": "gail", "password": "gail-password"}).json()["token"]
    with gail(service) as user:
        assert [t["name"] for t in user.get("/templates").json()["templates"]] == ["base"]
        plan = ok(run(service, "vm", "new", "g1", "--template", "base", "--host-group",
                      "Prod", "--dry-run", token=login))
        assert plan.startswith("localhost: "), plan
        empty = user.post("/provision", json={"template": "base", "name": "g2",
                                              "host_group": "Test", "dry_run": True})
        assert empty.status_code == 409 and "holds none of the hosts (localhost in " \
            f"{RACK})" in empty.json()["error"]["message"]
        assert api.put("/hostgroups/hosts/localhost", json={"group": TEST}).status_code == 200
        refused = user.post("/provision", json={"template": "base", "name": "g3",
                                                "dry_run": True})
        assert refused.status_code == 403, refused.text
        assert f"may not template.deploy on template:base in host group {TEST}" in \
            refused.json()["error"]["message"]
    for body in ({"host_group": "Prod"}, {"host_group": "Prod/Rack1"}):
        answer = api.post("/provision", json={"template": "base", "name": "a1",
                                              "dry_run": True, **body})
        assert answer.status_code == 409, answer.text  # the admin too: no host in Prod
    assert api.post("/provision", json={"template": "base", "name": "a1", "dry_run": True,
                                        "host_group": "Nope"}).status_code == 404
    plan = api.post("/provision", json={"template": "base", "name": "a1", "dry_run": True,
                                        "host_group": "Test"}).json()
    assert plan["host"] == "localhost"
    still = api.delete("/hostgroups/Prod/Rack1")
    assert still.status_code == 200  # empty now (the grant names Prod, not Rack1)
    named = api.delete("/hostgroups/Prod")
    assert named.status_code == 409 and f"a grant on hostgroup:{PROD}" in named.text
    assert [v["name"] for v in api.get("/vms").json()["vms"]] == ["src"]  # nothing made


def test_bad_paths_change_nothing(lab: tuple[Service, httpx.Client]) -> None:
    _, api = lab
    before = api.get("/hostgroups").json()
    for body in ({"path": ""}, {"path": "All Hosts"}, {"path": "x/../y"}):
        assert api.post("/hostgroups", json=body).status_code in (400, 409)
    assert api.put("/hostgroups/hosts/bad$host", json={"group": "Test"}).status_code == 400
    assert api.put("/hostgroups/hosts/h9", json={"group": "Nope"}).status_code == 404
    assert api.get("/hostgroups").json() == before


def test_quota_scoped_to_a_group(lab: tuple[Service, httpx.Client]) -> None:
    service, api = lab
    assert api.post("/access/grants", json={"role": "Self-service user", "to": "gail",
                                            "on": "template:base"}).status_code == 201
    assert api.put("/hostgroups/hosts/localhost", json={"group": TEST}).status_code == 200
    ok(run(service, "hostgroup", "quota", "Test", "gail", "--vms", "0"))
    ok(run(service, "hostgroup", "quota", "Prod", "gail", "--vms", "0"))
    with gail(service) as user:
        def dry(name: str) -> httpx.Response:
            return user.post("/provision", json={"template": "base", "name": name,
                                                 "dry_run": True})
        refused = dry("q1")
        assert refused.status_code == 403, refused.text
        assert f"gail (host group {TEST})'s quota would be exceeded — VMs: 0 used + 1 " \
            "requested > limit 0" in refused.json()["error"]["message"]
        shown = ok(run(service, "hostgroup", "quota", "Test", "gail", "--vms", "3",
                       "--memory", "1G"))
        assert f"gail in {TEST}: vms 3, memory_mb 1024" in shown, shown
        assert dry("q2").status_code == 200  # Prod's quota does not reach this host
        assert api.put("/hostgroups/hosts/localhost", json={"group": PROD}
                       ).status_code == 200
        assert dry("q3").status_code == 403  # now it does
        api.put("/hostgroups/hosts/localhost", json={"group": TEST})
    busy = api.delete("/hostgroups/Test")
    assert busy.status_code == 409 and "gail's quota" in busy.json()["error"]["message"]
    assert api.put("/hostgroups/quotas/gail", json={"group": "Test"}).json()["quotas"] == [
        {"group": PROD, "limits": {"vms": 0, "memory_mb": None, "processors": None,
                                   "disk_mb": None}}]
    assert api.get("/hostgroups/quotas/nobody").status_code == 404
