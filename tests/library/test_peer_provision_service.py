"""The peer provisioning route against a real service (issue 18; no guest boots: the VMs
are made but not started). The service is given a cluster peer token file as a member
would hold it. The route takes the peer token only — no token, the admin token and a
user's session are refused 401, and the peer token opens no other route; the user the
request names is authorized by this host's own access data: a user unknown here or
without a grant is refused 403 and nothing is made; a granted user gets the VM, owns it
(it is in the user's own VM list) and the audit log here names the forwarding host. A
share of a batch spread over hosts (``positions``) makes exactly those VMs of the batch,
with the batch's names; positions not of the batch are refused 400."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.service.harness import Service, running_service, tiny_templates, wait_for
from viridian.service.migration.cluster_peer import save_peer_token

PEER = "/api/v1/cluster/peer/provision"
TOKEN = "peer-token-of-the-test-cluster"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, dict[str, str]]]:
    with running_service() as service, service.client() as api:
        tiny_templates(api, tmp_path_factory.mktemp("peer-provision"), "src", "base")
        for user in ("ann", "gus"):
            made = api.post("/access/users", json={"name": user, "password": f"{user}-pw-1"})
            assert made.status_code == 201, made.text
        granted = api.post("/access/grants", json={"role": "Self-service user",
                                                   "to": "ann", "on": "template:base"})
        assert granted.status_code == 201, granted.text
        sessions = {u: _login(service, u) for u in ("ann", "gus")}
        save_peer_token(service.data_dir, TOKEN)
        yield service, sessions


def _login(service: Service, user: str) -> str:
    login = httpx.post(service.url + "/api/v1/access/login",
                       json={"user": user, "password": f"{user}-pw-1"})
    assert login.status_code == 200, login.text
    return str(login.json()["token"])


def _as(service: Service, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=service.url, timeout=120, headers=headers)


def _body(user: str, name: str, admin: bool = False) -> dict[str, Any]:
    return {"request": {"template": "base", "name": name, "start": False},
            "caller": {"user": user, "admin": admin}, "source": "h1"}


def _vm_names(service: Service) -> list[str]:
    with service.client() as api:
        return sorted(vm["name"] for vm in api.get("/vms").json()["vms"])


def _provisioned(api: httpx.Client, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """POST ``body`` to the peer route (202 expected) and wait for its job to end: (job
    id, the ended job)."""
    accepted = api.post(PEER, json=body)
    assert accepted.status_code == 202, accepted.text
    job_id = str(accepted.json()["id"])
    done = wait_for("the provision job", lambda: (
        job := api.get(f"{PEER}/{job_id}").json())["state"] in ("completed", "failed") and job)
    return job_id, dict(done)


def test_the_peer_route_takes_the_peer_token_and_nothing_else(
        lab: tuple[Service, dict[str, str]]) -> None:
    service, sessions = lab
    before = _vm_names(service)
    for token in (None, service.token, sessions["ann"], "not-the-token"):
        with _as(service, token) as api:
            refused = api.post(PEER, json=_body("ann", "nope", admin=True))
            assert refused.status_code == 401, (token, refused.text)
            assert "peer token" in refused.json()["error"]["message"]
            assert api.get(f"{PEER}/whatever").status_code == 401
    with _as(service, TOKEN) as api:  # the peer token is no credential elsewhere
        assert api.post("/api/v1/provision", json={"template": "base", "name": "nope"}
                        ).status_code == 401
        assert api.get("/api/v1/vms").status_code == 401
    assert _vm_names(service) == before


@pytest.mark.parametrize("user,why", [
    ("stranger", "user 'stranger' has no account on this host"),
    ("gus", "gus may not template.deploy on template:base"),
])
def test_a_user_this_host_does_not_authorize_is_refused_and_nothing_is_made(
        lab: tuple[Service, dict[str, str]], user: str, why: str) -> None:
    service, _ = lab
    before = _vm_names(service)
    with _as(service, TOKEN) as api:
        refused = api.post(PEER, json=_body(user, "nope"))
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["message"].startswith(why), refused.text
    assert _vm_names(service) == before
    assert not list((service.data_dir / "provisioned").glob("*/seed.iso"))


def test_a_granted_user_gets_the_vm_owns_it_and_the_audit_names_the_source(
        lab: tuple[Service, dict[str, str]]) -> None:
    service, sessions = lab
    with _as(service, TOKEN) as api:
        job_id, done = _provisioned(api, _body("ann", "fwd"))
    assert done["state"] == "completed", done
    assert done["result"]["vms"] == ["fwd"]
    with _as(service, sessions["ann"]) as ann:  # ann's own list: only what she may read
        assert [vm["name"] for vm in ann.get("/api/v1/vms").json()["vms"]] == ["fwd"]
    records = [json.loads(line) for line in
               (service.data_dir / "audit.log").read_text().splitlines()]
    forwarded = [r for r in records if r.get("request") == f"POST {PEER}"]
    assert [(r["who"], r["result"], r["status"]) for r in forwarded][-1] == ("ann", "ok", 202)
    assert forwarded[-1]["source"] == "cluster host h1"
    assert forwarded[-1]["job"] == job_id
    with service.client() as api:
        api.delete("/vms/fwd", params={"delete_files": "true"})


def test_a_share_of_a_spread_batch_makes_its_positions_with_the_batchs_names(
        lab: tuple[Service, dict[str, str]]) -> None:
    service, _ = lab
    share = {**_body("ann", "shr"), "positions": [2, 3]}
    share["request"]["count"] = 3
    with _as(service, TOKEN) as api:
        bad = api.post(PEER, json={**share, "positions": [3, 4]})
        assert bad.status_code == 400, bad.text
        assert "ascending distinct positions 1..3 of the batch" in bad.text
        _, done = _provisioned(api, share)
    assert done["state"] == "completed", done
    assert done["result"]["vms"] == ["shr-2", "shr-3"]
    assert [s["vms"] for s in done["result"]["split"]] == [["shr-2", "shr-3"]]
    assert [n for n in _vm_names(service) if n.startswith("shr")] == ["shr-2", "shr-3"]
    with service.client() as api:
        for name in ("shr-2", "shr-3"):
            api.delete(f"/vms/{name}", params={"delete_files": "true"})


def test_a_member_tells_which_of_its_vms_read_a_template_and_what_a_user_owns(
        lab: tuple[Service, dict[str, str]]) -> None:
    """``POST .../disk-users`` and ``.../usage`` (peer token only): what a member removing
    a template asks every other host (a template on shared storage is never removed under
    a VM of another host), and what a user's VMs here add up to (host-group quotas)."""
    service, _ = lab
    route = "/api/v1/cluster/peer/disk-users"
    with service.client() as api:
        disks = [d["path"] for v in api.get("/templates/base").json()["versions"]
                 for d in v["disks"]]
    with _as(service, TOKEN) as api:
        assert _provisioned(api, _body("ann", "reader"))[1]["state"] == "completed"
        answer = api.post(route, json={"paths": disks})
        assert (answer.status_code, answer.json()) == (200, {"vms": ["reader"]}), answer.text
        assert api.post(route, json={"paths": ["/nothing/reads/this"]}).json() == {"vms": []}
        bad = api.post(route, json={"paths": ["relative/disk.qcow2"]})
        assert bad.status_code == 400 and "must be absolute" in bad.text, bad.text
        usage = api.post("/api/v1/cluster/peer/usage", json={"user": "ann"}).json()
        assert (usage["vms"], usage["memory_mb"] > 0) == (1, True), usage  # "reader"
        assert api.post("/api/v1/cluster/peer/usage", json={"user": "gus"}).json() == {
            "vms": 0, "memory_mb": 0, "processors": 0, "disk_mb": 0}
    with _as(service, service.token) as api:  # the admin token is no peer credential
        assert api.post(route, json={"paths": disks}).status_code == 401
    with service.client() as api:
        api.delete("/vms/reader", params={"delete_files": "true"})
