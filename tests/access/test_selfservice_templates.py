"""Self-service provisioning from granted templates against a real service (issue 18
part 5): a user granted the built-in "Self-service user" role on ``template:base`` lists
and reads only that template (API and ``viridian template list``), is refused (403
naming the template) from another one and past its quota (with used/requested/limit)
before anything is made, and provisions one real guest from ``base`` that reaches
"provisioned: ready"; the user owns that VM, sees only it (also in the template's
"used by") and stops it. A user with no template.deploy anywhere is refused at the
gate."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.cli.cli_harness import CLEAN_ENV
from tests.service.harness import Service, running_service, wait_job
from viridian.cli.main import cli

pytestmark = [pytest.mark.guest]


def user_client(service: Service, user: str, password: str) -> httpx.Client:
    login = httpx.post(service.url + "/api/v1/access/login",
                       json={"user": user, "password": password})
    assert login.status_code == 200, login.text
    return httpx.Client(base_url=service.url + "/api/v1", timeout=120, headers={
        "Authorization": f"Bearer {login.json()['token']}"})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, httpx.Client]]:
    from viridian.guestkit import build

    work = tmp_path_factory.mktemp("selfservice")
    boot, other = work / "boot.img", work / "other.img"
    shutil.copyfile(build().raw, boot)
    other.write_bytes(b"\0" * (1 << 20))
    with running_service() as service, service.client() as api:
        for name, disk in (("src", boot), ("src-other", other)):
            assert api.post("/vms", json={"name": name, "memory_mb": 128, "vhd": str(disk)}
                            ).status_code == 201
        for template, vm in (("base", "src"), ("other", "src-other")):
            job = wait_job(api, api.post("/templates", json={"name": template, "vm": vm}
                                         ).json(), timeout=300)
            assert job["state"] == "completed", job
        for call in (api.post("/access/users", json={"name": "sally",
                                                     "password": "sally-password"}),
                     api.post("/access/users", json={"name": "vic",
                                                     "password": "vic-password"}),
                     api.post("/access/grants", json={"role": "Self-service user",
                                                      "to": "sally", "on": "template:base"}),
                     api.post("/access/grants", json={"role": "Viewer", "to": "vic"})):
            assert call.status_code == 201, call.text
        assert api.put("/access/quotas/sally", json={"vms": 2, "memory_mb": 1024}
                       ).status_code == 200
        yield service, api


@pytest.fixture(scope="module")
def sally(lab: tuple[Service, httpx.Client]) -> Iterator[httpx.Client]:
    with user_client(lab[0], "sally", "sally-password") as client:
        yield client


def refused(answer: httpx.Response, *phrases: str) -> str:
    assert answer.status_code == 403, answer.text
    message = str(answer.json()["error"]["message"])
    for phrase in phrases:
        assert phrase in message, message
    return message


def provisioned(service: Service) -> list[Path]:
    return sorted((service.data_dir / "provisioned").glob("*/"))


def test_lists_and_reads_only_granted_templates(lab: tuple[Service, httpx.Client],
                                                sally: httpx.Client) -> None:
    _, api = lab
    assert [t["name"] for t in api.get("/templates").json()["templates"]] == ["base", "other"]
    assert [t["name"] for t in sally.get("/templates").json()["templates"]] == ["base"]
    assert sally.get("/templates/base").status_code == 200
    refused(sally.get("/templates/other"), "library.read on template:other")
    refused(sally.get("/library"), "library.read on host")
    token = str(sally.headers["Authorization"]).removeprefix("Bearer ")
    listed = CliRunner(env=dict(CLEAN_ENV)).invoke(
        cli, ["--url", lab[0].url, "--token", token, "template", "list"],
        prog_name="viridian", catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    rows = [line.split()[0] for line in listed.stdout.splitlines()[1:] if line.strip()]
    assert rows == ["base"], listed.stdout


def test_refused_before_anything_is_made(lab: tuple[Service, httpx.Client],
                                         sally: httpx.Client) -> None:
    service, api = lab
    before = (api.get("/vms").json(), provisioned(service))
    refused(sally.post("/provision", json={"template": "other", "name": "mine"}),
            "template.deploy on template:other", "nothing was changed")
    refused(sally.post("/provision", json={"template": "base", "name": "many", "count": 3}),
            "VMs: 0 used + 3 requested > limit 2")
    refused(sally.post("/provision", json={"template": "base", "name": "big", "count": 2,
                                           "memory_mb": 768}),
            "memory (MB): 0 used + 1536 requested > limit 1024")
    with user_client(service, "vic", "vic-password") as vic:
        refused(vic.post("/provision", json={"template": "base", "name": "v"}),
                "may not template.deploy")
    assert (api.get("/vms").json(), provisioned(service)) == before


def wait_ready(client: httpx.Client, name: str, timeout: float = 400) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    vm: dict[str, Any] = {}
    while time.monotonic() < deadline:
        vm = client.get(f"/vms/{name}").json()
        if vm.get("provisioning") == "provisioned: ready":
            break
        time.sleep(2)
    return vm


def test_provisions_owns_and_manages_its_vm(lab: tuple[Service, httpx.Client],
                                            sally: httpx.Client) -> None:
    service, api = lab
    answer = sally.post("/provision", json={"template": "base", "name": "sally-web",
                                            "memory_mb": 160})
    assert answer.status_code == 202, answer.text
    job = wait_job(api, answer.json(), timeout=300)  # the job: the admin reads it
    assert job["state"] == "completed", job
    assert [v["name"] for v in sally.get("/vms").json()["vms"]] == ["sally-web"]
    vm = wait_ready(sally, "sally-web")
    assert vm.get("provisioning") == "provisioned: ready", vm
    assert vm["state"] == "Running"
    whoami = sally.get("/access/whoami").json()
    assert whoami["quota"]["used"]["vms"] == 1 and whoami["quota"]["used"]["memory_mb"] == 160
    refused(sally.post("/provision", json={"template": "base", "name": "more", "count": 2}),
            "VMs: 1 used + 2 requested > limit 2")
    refused(sally.get("/vms/src"), "vm.read on vm:src")
    stop = sally.post("/vms/sally-web/stop", params={"wait": 60})
    assert stop.status_code in (200, 202), stop.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sally.get("/vms/sally-web").json()["state"] != "Off":
        time.sleep(1)
    assert sally.get("/vms/sally-web").json()["state"] == "Off"
    assert len(provisioned(service)) == 1
    admins = api.post("/provision", json={"template": "base", "name": "admin-web",
                                          "start": False})
    assert wait_job(api, admins.json(), timeout=300)["state"] == "completed"
    used = {t["name"]: t["used_by"] for t in api.get("/templates").json()["templates"]}
    assert sorted(used["base"]) == ["admin-web", "sally-web"]
    (mine,) = sally.get("/templates").json()["templates"]
    assert mine["used_by"] == ["sally-web"]  # no other user's VM names
    assert sally.get("/templates/base").json()["used_by"] == ["sally-web"]
