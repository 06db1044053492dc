"""Forwarded provisioning without services (issue 18): which host a placed request goes
to, who it is sent for, how a member's refusal reaches the caller (same status, code and
message, naming the member), and the refusal when the member cannot be asked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from viridian.access.principal import BOOTSTRAP, Principal
from viridian.errors import Conflict, HostError, ViridianError
from viridian.service.library.forwarding import Caller, Forwarder, destination, remote_error
from viridian.service.migration.cluster_peer import save_peer_token


def test_a_request_placed_here_stays_and_one_placed_on_a_member_goes_there() -> None:
    assert destination({"host": "h1", "this_host": "h1"}) is None
    assert destination({"host": "localhost", "this_host": "localhost"}) is None
    assert destination({"host": "h3", "this_host": "h1"}) == "h3"
    assert destination({"host": None, "this_host": "h1"}) is None  # nowhere: refused before


def test_the_caller_is_named_never_its_credentials() -> None:
    assert Caller.of(BOOTSTRAP).to_dict() == {"user": "admin-token", "admin": True,
                                              "token_role": None}
    assert Caller.of(None).admin  # a service without the access gate: its admin
    ann = Principal("ann", "local", "token", frozenset({"ops"}), token_id="t1",
                    token_role="Self-service user")
    assert Caller.of(ann).to_dict() == {"user": "ann", "admin": False,
                                        "token_role": "Self-service user"}


def test_a_members_refusal_keeps_its_status_code_and_message() -> None:
    denied = remote_error("h3", {"code": "forbidden", "message": "ann may not template.deploy "
                                 "on template:base", "details": {"user": "ann"}}, 403)
    assert (denied.http_status, denied.code, denied.exit_code) == (403, "forbidden", 5)
    assert denied.message == "cluster host 'h3': ann may not template.deploy on template:base"
    assert denied.details == {"user": "ann", "host": "h3"}
    missing = remote_error("h3", {"code": "not_found", "message": "no template named 'x'; "
                                  "templates: none"}, 404)
    assert (missing.http_status, missing.code) == (404, "not_found")
    assert "no template named 'x'" in missing.message


def test_a_failed_member_job_fails_with_the_status_of_its_code() -> None:
    full = remote_error("h3", {"code": "admission_refused", "message": "not enough memory"})
    assert (full.http_status, full.code) == (409, "admission_refused")
    odd = remote_error("h3", {"code": "no_such_code", "message": "?"})
    assert (odd.http_status, odd.code) == (500, "host_error")


def test_a_member_refusing_the_peer_token_is_a_host_error_not_the_callers() -> None:
    refused = remote_error("h3", {"code": "unauthorized", "message": "peer token"}, 401)
    assert isinstance(refused, HostError) and refused.http_status == 500
    assert "refused this host's cluster peer token" in refused.message


def _forwarder(tmp_path: Path, url: str) -> Forwarder:
    context: Any = SimpleNamespace(data_dir=tmp_path)
    placement: Any = SimpleNamespace(remote_api=lambda host: url,
                                     remote_certificate=lambda host: "")
    return Forwarder(context, placement)


@pytest.mark.parametrize("url,token,why", [
    ("", "secret", "publishes no service URL"),
    ("http://127.0.0.1:9", "", "cannot be asked: this host has no cluster peer token"),
])
def test_a_member_that_cannot_be_asked_is_refused_before_anything_is_sent(
        tmp_path: Path, url: str, token: str, why: str) -> None:
    if token:
        save_peer_token(tmp_path, token)
    planned = {"host": "h3", "this_host": "h1", "version": 1}
    with pytest.raises(Conflict) as refused:
        asyncio.run(_forwarder(tmp_path, url).forward("h3", {"name": "web"},
                                                      Caller("ann"), planned))
    assert refused.value.message == f"cluster host 'h3' {why}; nothing was changed"


def test_a_member_that_does_not_answer_is_a_host_error(tmp_path: Path) -> None:
    save_peer_token(tmp_path, "secret")
    planned = {"host": "h3", "this_host": "h1", "version": 1}
    with pytest.raises(HostError) as lost:  # port 9 (discard): nothing listens here
        asyncio.run(_forwarder(tmp_path, "http://127.0.0.1:9").forward(
            "h3", {"name": "web"}, Caller("ann"), planned))
    assert lost.value.message.startswith("cluster host 'h3' (http://127.0.0.1:9) did not "
                                         "answer POST /api/v1/cluster/peer/provision")


SPLIT = {"this_host": "h1", "host": "h3", "version": 1, "vms": ["web-1", "web-2", "web-3"],
         "split": [{"host": "h3", "positions": [1, 3], "vms": ["web-1", "web-3"]},
                   {"host": "h1", "positions": [2], "vms": ["web-2"]}]}


class FakeMembers:
    """The members' peer routes: POST answers a job id (or the refusal of ``refuse``),
    GET the job ended as ``ends``; what was sent is kept."""

    def __init__(self, ends: dict[str, Any], refuse: dict[str, int] | None = None) -> None:
        self.ends, self.refuse = ends, refuse or {}
        self.sent: dict[str, dict[str, Any]] = {}

    async def __call__(self, url: str, token: str, certificate: str, method: str, path: str,
                       host: str, body: dict[str, Any] | None) -> dict[str, Any]:
        if method == "POST":
            if host in self.refuse:
                raise remote_error(host, {"code": "forbidden", "message": "ann may not "
                                          "template.deploy"}, self.refuse[host])
            self.sent[host] = dict(body or {})
            return {"id": f"job-on-{host}"}
        return dict(self.ends[host])


def _spread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, members: FakeMembers,
            planned: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[int, ...]]]:
    """Run a spread batch against ``members``; the ended job and what this host made."""
    from viridian.service import library
    from viridian.service.catalog import Catalog
    from viridian.service.jobs import Job, JobRunner

    monkeypatch.setattr(library.forwarding, "_call", members)
    save_peer_token(tmp_path, "secret")
    made_here: list[tuple[int, ...]] = []

    async def here(job: Job, positions: tuple[int, ...]) -> dict[str, Any]:
        made_here.append(positions)
        return {"vms": ["web-2"]}

    async def run() -> dict[str, Any]:
        catalog = Catalog(tmp_path / "catalog.sqlite")
        try:
            context: Any = SimpleNamespace(data_dir=tmp_path, jobs=JobRunner(catalog))
            placement: Any = SimpleNamespace(remote_api=lambda host: "http://member",
                                             remote_certificate=lambda host: "")
            answer = await Forwarder(context, placement).spread(
                planned, {"name": "web", "count": 3}, Caller("ann"), here)
            return dict(await context.jobs.wait(answer["id"], 60))
        finally:
            catalog.close()
    return asyncio.run(run()), made_here


def test_a_spread_batch_sends_each_member_its_share_and_one_job_reports_every_vm(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = FakeMembers({"h3": {"state": "completed", "progress": 100,
                                  "result": {"vms": ["web-1", "web-3"]}}})
    done, made_here = _spread(tmp_path, monkeypatch, members, SPLIT)
    assert done["state"] == "completed", done
    assert members.sent["h3"]["positions"] == [1, 3]
    assert members.sent["h3"]["request"] == {"name": "web", "count": 3}  # the whole batch
    assert made_here == [(2,)]
    assert done["result"]["vms"] == ["web-1", "web-2", "web-3"]
    assert done["result"]["remote_jobs"] == {"h3": "job-on-h3"}
    assert [(s["host"], s["vms"]) for s in done["result"]["split"]] == [
        ("h3", ["web-1", "web-3"]), ("h1", ["web-2"])]


def test_a_failed_share_fails_the_job_naming_it_and_what_was_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = FakeMembers({"h3": {"state": "failed", "error": {
        "code": "admission_refused", "message": "not enough memory"}}})
    done, _ = _spread(tmp_path, monkeypatch, members, SPLIT)
    assert done["state"] == "failed" and done["error"]["code"] == "admission_refused"
    assert done["error"]["message"] == (
        "the batch was not made on every host (cluster host 'h3': not enough memory); "
        "made and kept: web-2 on h1")


def test_a_member_refusing_its_share_is_the_answer_naming_the_members_already_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planned = {**SPLIT, "split": [{"host": "h2", "positions": [1], "vms": ["web-1"]},
                                  {"host": "h3", "positions": [2, 3],
                                   "vms": ["web-2", "web-3"]}]}
    members = FakeMembers({}, refuse={"h3": 403})
    with pytest.raises(ViridianError) as refused:
        _spread(tmp_path, monkeypatch, members, planned)
    assert refused.value.http_status == 403
    assert refused.value.message == ("cluster host 'h3': ann may not template.deploy; "
                                     "already asked: h2 (its job job-on-h2)")


class DiskUsersOf:
    """The members' disk-users route: host → the VMs it answers, or an error it raises."""

    def __init__(self, answers: dict[str, list[str] | ViridianError]) -> None:
        self.answers = answers
        self.asked: dict[str, Any] = {}

    async def __call__(self, url: str, token: str, certificate: str, method: str, path: str,
                       host: str, body: dict[str, Any] | None) -> dict[str, Any]:
        assert (method, path) == ("POST", "/api/v1/cluster/peer/disk-users")
        self.asked[host] = body
        answer = self.answers[host]
        if isinstance(answer, ViridianError):
            raise answer
        return {"vms": answer}


def _members_forwarder(tmp_path: Path, hosts: list[str]) -> Forwarder:
    save_peer_token(tmp_path, "peer")
    context: Any = SimpleNamespace(data_dir=tmp_path)
    placement: Any = SimpleNamespace(other_members=lambda: hosts,
                                     remote_api=lambda host: f"https://{host}:8443",
                                     remote_certificate=lambda host: "")
    return Forwarder(context, placement)


def test_every_other_member_is_asked_which_of_its_vms_read_the_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from viridian.service import library

    members = DiskUsersOf({"h2": ["web-2"], "h3": []})
    monkeypatch.setattr(library.forwarding, "_call", members)
    disks = {Path("/lib/templates/base/v1/disk0.qcow2")}
    found = asyncio.run(_members_forwarder(tmp_path, ["h2", "h3"]).disk_users(disks))
    assert found == {"h2": ["web-2"], "h3": []}
    assert members.asked == {h: {"paths": ["/lib/templates/base/v1/disk0.qcow2"]}
                             for h in ("h2", "h3")}


def test_a_member_that_cannot_tell_blocks_the_removal_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from viridian.service import library

    members = DiskUsersOf({"h2": [], "h3": HostError("cluster host 'h3' did not answer")})
    monkeypatch.setattr(library.forwarding, "_call", members)
    with pytest.raises(Conflict) as refused:
        asyncio.run(_members_forwarder(tmp_path, ["h2", "h3"]).disk_users({Path("/x")}))
    assert refused.value.message == (
        "cannot tell whether VMs on cluster host 'h3' read these files (cluster host 'h3' "
        "did not answer); nothing was changed")


def test_a_template_read_on_another_host_is_kept_naming_the_vm_and_host(
        tmp_path: Path) -> None:
    from viridian.library.templates import TemplateDisk, TemplateManifest
    from viridian.service.library.templates import StoredTemplate, Templates

    folder = tmp_path / "templates" / "base" / "v1"
    folder.mkdir(parents=True)
    disk = TemplateDisk("ide:0:0", "disk0.qcow2", "qcow2", 1 << 20, "0" * 64)
    stored = StoredTemplate(TemplateManifest("base", 1, "now", "src", {}, (disk,)),
                            "default", folder)

    async def elsewhere(disks: set[Path]) -> dict[str, list[str]]:
        assert disks == {folder / "disk0.qcow2"}
        return {"h2": ["web-2", "web-3"], "h3": []}

    templates = Templates(SimpleNamespace(vms=dict), SimpleNamespace())  # type: ignore[arg-type]
    templates.versions = lambda name: [stored]  # type: ignore[method-assign]
    templates.remote_users = elsewhere
    with pytest.raises(Conflict) as refused:
        asyncio.run(templates.remove("base", None))
    assert refused.value.message == (
        "template 'base' is in use by web-2 (on h2), web-3 (on h2) (they read its disks); "
        "remove those VMs first; nothing was changed")
    assert folder.is_dir()


def test_a_users_vms_on_the_other_members_are_counted_for_group_quotas(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from viridian.access.quotas import Usage
    from viridian.service import library

    async def members(url: str, token: str, certificate: str, method: str, path: str,
                      host: str, body: dict[str, Any] | None) -> dict[str, Any]:
        assert (method, path, body) == ("POST", "/api/v1/cluster/peer/usage", {"user": "ann"})
        if host == "h3":
            raise HostError("cluster host 'h3' did not answer")
        return {"vms": 2, "memory_mb": 512, "processors": 2, "disk_mb": 100}

    monkeypatch.setattr(library.forwarding, "_call", members)
    found = asyncio.run(_members_forwarder(tmp_path, ["h2"]).usage_of("ann"))
    assert found == {"h2": Usage(2, 512, 2, 100)}
    with pytest.raises(Conflict) as refused:
        asyncio.run(_members_forwarder(tmp_path, ["h2", "h3"]).usage_of("ann"))
    assert refused.value.message == (
        "cannot count ann's VMs on cluster host 'h3' for the host-group quota (cluster host "
        "'h3' did not answer); nothing was changed")
