"""Access against a real service (one per module): every route has an operation in the
OpenAPI document, and a matrix GENERATED FROM THAT DOCUMENT — every route x each built-in
role (granted on the host, through an API token) plus no credentials, a revoked or forged
token, an expired login session, and a console session with a wrong CSRF token:
allowed requests get past the gate (any answer but 401/403), the others get 403 (401 without
valid credentials) and change nothing. Also: a VM User sees only granted/owned VMs; the audit
log records denials and verifies; PAM logs in a real local account made with useradd."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.service.harness import Service, http_client, running_service
from viridian.access.roles import BUILTIN_ROLES
from viridian.access.route_table import ACTION_OPERATIONS, OWN_JOBS_LIST, PUBLIC

ROLES = sorted(BUILTIN_ROLES)
STREAMS = {"/api/v1/events"}  # never ends: its gate answer is checked by the denials


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with running_service() as svc:
        yield svc


def admin(svc: Service) -> httpx.Client:
    return svc.client()


def as_token(svc: Service, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http_client(svc.url, timeout=30, headers=headers)


def routes(svc: Service) -> list[tuple[str, str, str]]:
    """(method, concrete path, operation) of every route in the OpenAPI document."""
    spec = httpx.get(svc.url + "/openapi.json", headers={
        "Authorization": f"Bearer {svc.token}"}).json()
    found = []
    for path, methods in spec["paths"].items():
        for method, doc in methods.items():
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            op = doc.get("x-viridian-operation")
            if op == "vm.<action>":
                for action, action_op in ACTION_OPERATIONS.items():
                    found.append((method.upper(), concrete[: -1] + action, action_op))
                continue
            found.append((method.upper(), concrete, op))
    return found


def test_every_route_names_its_operation(service: Service) -> None:
    missing = [(m, p) for m, p, op in routes(service) if not op]
    assert missing == [], f"routes without an operation in viridian.access.route_table: {missing}"


@pytest.fixture(scope="module")
def role_tokens(service: Service) -> dict[str, str]:
    tokens = {}
    with admin(service) as api:
        for role in ROLES:
            user = "u" + role.lower().replace(" ", "")
            assert api.post("/access/users", json={"name": user, "password": "pw-" + user * 2}
                            ).status_code == 201
            assert api.post("/access/grants", json={"role": role, "to": user, "on": "host"}
                            ).status_code == 201
            answer = api.post("/access/tokens", json={"user": user, "name": "matrix"})
            tokens[role] = answer.json()["secret"]
    return tokens


def snapshot(svc: Service) -> Any:
    with admin(svc) as api:
        return [api.get(p).json() for p in ("/vms", "/switches", "/access/users",
                                             "/access/grants", "/access/roles")]


def expired_session(svc: Service) -> str:
    """A user's login session whose time ran out (its row's expiry set in the past)."""
    with admin(svc) as api:
        api.post("/access/users", json={"name": "late", "password": "late-password"})
    token = httpx.post(svc.url + "/api/v1/access/login",
                       json={"user": "late", "password": "late-password"}).json()["token"]
    with as_token(svc, token) as client:
        assert client.get("/api/v1/access/whoami").status_code == 200
    with sqlite3.connect(svc.data_dir / "access.sqlite") as db:
        db.execute("UPDATE sessions SET expires=0 WHERE user='late'")
    return str(token)


def console_session(svc: Service) -> httpx.Client:
    """A browser-like client holding a console session cookie (admin-token login)."""
    client = http_client(svc.url, timeout=30)
    answer = client.post("/login", data={"token": svc.token})
    assert answer.status_code == 303 and client.cookies, answer.text
    return client


def test_matrix_from_openapi(service: Service, role_tokens: dict[str, str]) -> None:
    table = routes(service)
    before = snapshot(service)
    revoked = None
    with admin(service) as api:
        api.post("/access/users", json={"name": "gone", "password": "gone-password"})
        revoked = api.post("/access/tokens", json={"user": "gone", "name": "t"}).json()
        api.delete(f"/access/tokens/{revoked['id']}")
    expired = expired_session(service)
    console = console_session(service)
    allowed: list[tuple[str, str, str]] = []
    for method, path, op in table:
        if (method, path) in PUBLIC or op is None:
            continue  # a route without an operation fails test_every_route_names_its_operation
        for bad in (None, revoked["secret"], "vtk_000000000000.forgedforgedforgedforged",
                    expired):
            with as_token(service, bad) as client:
                assert client.request(method, path, json={}).status_code == 401, (method, path)
        if method not in ("GET", "WS"):  # a console session with a wrong CSRF token
            answer = console.request(method, path, json={},
                                     headers={"X-CSRF-Token": "not-the-csrf-token"})
            assert answer.status_code == 403 and "CSRF" in answer.text, (method, path)
        for role, token in role_tokens.items():
            if op in BUILTIN_ROLES[role].operations:
                allowed.append((method, path, role))
                continue
            with as_token(service, token) as client:
                answer = client.request(method, path, json={})
            if (method, path) == OWN_JOBS_LIST:  # without host.read: only its own jobs, none
                assert (answer.status_code, answer.json()) == (200, {"jobs": []}), role
                continue
            assert answer.status_code == 403, (role, method, path, answer.text)
            assert op in answer.json()["error"]["message"]
    console.close()
    after = snapshot(service)
    assert [before[0], before[1], before[4]] == [after[0], after[1], after[4]]
    for method, path, role in allowed:
        if (method != "GET" and role != "Administrator") or path in STREAMS:
            continue  # state-changing allowed calls once, by the Administrator (below)
        with as_token(service, role_tokens[role]) as client:
            answer = client.request(method, path, json={})
        assert answer.status_code not in (401, 403), (role, method, path, answer.text)


def test_vm_user_sees_only_granted_and_owned_vms(service: Service) -> None:
    with admin(service) as api:
        for name in ("seen", "hidden"):
            assert api.post("/vms", json={"name": name, "memory_mb": 64}).status_code == 201
        api.post("/access/users", json={"name": "self", "password": "self-password"})
        api.post("/access/grants", json={"role": "VM User", "to": "self", "on": "vm:seen"})
        api.post("/access/grants", json={"role": "Operator", "to": "self", "on": "tag:mine"})
        api.post("/access/grants", json={"role": "Administrator", "to": "self",
                                         "on": "vm:nothing"})
    login = httpx.post(service.url + "/api/v1/access/login",
                       json={"user": "self", "password": "self-password"})
    assert login.status_code == 200, login.text
    with as_token(service, login.json()["token"]) as me:
        assert [v["name"] for v in me.get("/api/v1/vms").json()["vms"]] == ["seen"]
        assert me.get("/api/v1/vms/hidden").status_code == 403
        assert me.patch("/api/v1/vms/seen", json={"notes": "x"}).status_code == 403
        with admin(service) as api:
            assert api.put("/vms/hidden/tags", json={"tags": ["mine"]}).status_code == 200
        assert sorted(v["name"] for v in me.get("/api/v1/vms").json()["vms"]) == [
            "hidden", "seen"]
    with admin(service) as api:
        records = api.get("/access/audit", params={"user": "self"}).json()["records"]
        assert any(r["result"] == "denied" and r["target"] == "vm:hidden" for r in records)
        assert api.get("/access/audit/verify").json()["ok"] is True


@pytest.fixture
def local_account() -> Iterator[tuple[str, str]]:
    name, password = f"vir{uuid.uuid4().hex[:8]}", "Pam-Passw0rd!"
    subprocess.run(["useradd", "--no-create-home", "-G", "users", name], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}".encode(), check=True)
        yield name, password
    finally:
        subprocess.run(["userdel", name], check=False)


def test_pam_realm_logs_in_a_real_local_account(service: Service,
                                                local_account: tuple[str, str]) -> None:
    name, password = local_account
    with admin(service) as api:
        assert api.post("/access/users", json={"name": name, "realm": "pam"}).status_code == 201
        api.post("/access/grants", json={"role": "Viewer", "to": "@users", "on": "host"})
    url = service.url + "/api/v1/access/login"
    assert httpx.post(url, json={"user": name, "password": "wrong-one"}).status_code == 401
    login = httpx.post(url, json={"user": name, "password": password, "realm": "pam"})
    assert login.status_code == 200, login.text
    assert "users" in login.json()["groups"]
    with as_token(service, login.json()["token"]) as me:
        assert me.get("/api/v1/host").status_code == 200  # Viewer through @users
        assert me.post("/api/v1/host/shutdown").status_code == 403


def test_failed_logins_lock_out_but_never_the_admin_token(service: Service) -> None:
    with admin(service) as api:
        api.post("/access/users", json={"name": "lock", "password": "lock-password"})
    url = service.url + "/api/v1/access/login"
    for _ in range(5):
        assert httpx.post(url, json={"user": "lock", "password": "nope"}).status_code == 401
    refused = httpx.post(url, json={"user": "lock", "password": "lock-password"})
    assert refused.status_code == 401 and "locked" in refused.text
    with admin(service) as api:
        assert api.get("/host").status_code == 200


def test_a_self_service_user_follows_its_own_job_and_no_one_elses(service: Service) -> None:
    """Issue 18: the job a self-service user's request started is theirs to read and cancel
    without job.read on the host; another user without it gets 403 for that job."""
    with admin(service) as api:
        for user in ("sue", "sid"):
            for call in (api.post("/access/users", json={"name": user,
                                                         "password": f"{user}-password"}),
                         api.post("/access/grants", json={
                             "role": "Self-service user", "to": user,
                             "on": "template:base"})):
                assert call.status_code == 201, call.text
        assert api.post("/vms", json={"name": "sues", "memory_mb": 64}).status_code == 201
        assert api.put("/vms/sues/owner", json={"user": "sue"}).status_code == 200
        sue, sid = (api.post("/access/tokens", json={"user": u, "name": "jobs"}
                             ).json()["secret"] for u in ("sue", "sid"))
    with as_token(service, sue) as me:  # a checkpoint of the VM sue owns: a job
        started = me.post("/api/v1/vms/sues/checkpoints", json={"name": "cp1"})
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        assert started.json()["submitted_by"] == "sue"
        mine = me.get(f"/api/v1/jobs/{job_id}", params={"wait": 60})
        assert mine.status_code == 200, mine.text
        assert (mine.json()["state"], mine.json()["submitted_by"]) == ("completed", "sue")
        cancel = me.post(f"/api/v1/jobs/{job_id}/cancel")  # past the gate: it has ended
        assert cancel.status_code == 409, cancel.text
        own = me.get("/api/v1/jobs")  # without host.read: only the jobs sue submitted
        assert own.status_code == 200, own.text
        assert [(j["id"], j["submitted_by"]) for j in own.json()["jobs"]] == [(job_id, "sue")]
    with as_token(service, sid) as other:
        for answer in (other.get(f"/api/v1/jobs/{job_id}"),
                       other.post(f"/api/v1/jobs/{job_id}/cancel")):
            assert answer.status_code == 403, answer.text
            assert "may not job." in answer.json()["error"]["message"]
        assert other.get("/api/v1/jobs").json() == {"jobs": []}
    with admin(service) as api:
        listed = {j["id"]: j["submitted_by"] for j in api.get("/jobs").json()["jobs"]}
        assert listed[job_id] == "sue"  # host.read: every job
    spec = httpx.get(service.url + "/openapi.json", headers={
        "Authorization": f"Bearer {service.token}"}).json()
    for method, path in (("get", "/api/v1/jobs/{job_id}"),
                         ("post", "/api/v1/jobs/{job_id}/cancel")):
        assert spec["paths"][path][method]["x-viridian-or"] == "the job's submitter"
    assert spec["paths"]["/api/v1/jobs"]["get"]["x-viridian-or"] == \
        "anyone: only the jobs they submitted"
