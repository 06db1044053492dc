"""The access CLI against a real service (one per module): users, realms, roles, grants,
tokens, quotas, storage paths, audit — each with --json and with the exit codes of
docs/api.md for bad input (2), unknown names (3), duplicates (4) and denials (5) — and
`viridian login`, whose session is sent to that URL's address only."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.cli.cli_harness import CLEAN_ENV, invoke
from tests.service.harness import Service, running_service
from viridian.cli.main import cli


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with running_service() as svc:
        yield svc


def run(svc: Service, *args: str, stdin: str | None = None,
        env: dict[str, str] | None = None) -> Result:
    """``viridian --url SERVICE ARGS`` with the local admin token (the data folder's)."""
    runner = CliRunner(env={**CLEAN_ENV, "VIRIDIAN_DATA_DIR": str(svc.data_dir), **(env or {})})
    return runner.invoke(cli, ["--url", svc.url, *args], input=stdin, prog_name="viridian",
                         catch_exceptions=False)


def ok_json(result: Result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_users_roles_grants_with_json_and_exit_codes(service: Service) -> None:
    added = ok_json(run(service, "user", "add", "alice", "--password-stdin", "--json",
                        stdin="alice-password\n"))
    assert added == {**added, "name": "alice", "realm": "local", "totp": False}
    assert run(service, "user", "add", "alice", "--password-stdin",
               stdin="alice-password\n").exit_code == 4
    bad = run(service, "user", "add", "9 bad", "--password-stdin", stdin="whatever-pw\n")
    assert bad.exit_code == 2 and "invalid user name" in bad.stderr
    no_pw = run(service, "user", "add", "bob")
    assert no_pw.exit_code == 2 and "--password-stdin" in no_pw.stderr
    assert run(service, "user", "show", "nobody").exit_code == 3
    users = ok_json(run(service, "user", "list", "--json"))
    assert isinstance(users, list) and [u["name"] for u in users] == ["alice"]

    role = ok_json(run(service, "role", "new", "Starter", "--operations", "vm.read,vm.start",
                       "--json"))
    assert isinstance(role, dict) and role["operations"] == ["vm.read", "vm.start"]
    unknown = run(service, "role", "new", "Odd", "--operations", "vm.fly")
    assert unknown.exit_code == 2 and "unknown operation 'vm.fly'" in unknown.stderr
    shown = run(service, "role", "show", "Starter")
    assert shown.exit_code == 0 and "vm.start" in shown.stdout
    assert "Administrator" in run(service, "role", "list").stdout

    granted = ok_json(run(service, "grant", "Starter", "--to", "alice", "--on", "tag:web",
                          "--json"))
    assert granted == {**granted, "role": "Starter", "to": "alice", "on": "tag:web"}
    assert run(service, "grant", "Starter", "--to", "alice", "--on", "bogus").exit_code == 2
    assert run(service, "grant", "Starter", "--to", "@devs", "--on", "host").exit_code == 0
    grants = ok_json(run(service, "grants", "--json"))
    assert isinstance(grants, list) and len(grants) == 2
    assert run(service, "revoke", "Starter", "--to", "@devs", "--on", "host").exit_code == 0
    assert run(service, "revoke", "Starter", "--to", "@devs", "--on", "host").exit_code == 3
    assert run(service, "user", "join", "alice", "devs").exit_code == 0
    assert "devs" in run(service, "user", "show", "alice").stdout
    assert run(service, "role", "remove", "Administrator").exit_code == 4


def test_tokens_quota_storage_realms(service: Service, tmp_path: Path) -> None:
    run(service, "user", "add", "carol", "--password-stdin", stdin="carol-password\n")
    run(service, "grant", "Viewer", "--to", "carol")
    made = run(service, "token", "new", "--user", "carol", "--name", "ci", "--role", "Viewer")
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("vtk_") and "shown only now" in made.stderr
    assert invoke(["--url", service.url, "--token", secret, "host", "show"]).exit_code == 0
    denied = invoke(["--url", service.url, "--token", secret, "user", "list"])
    assert denied.exit_code == 5 and "access.manage" in denied.stderr
    tokens = ok_json(run(service, "token", "list", "--json"))
    assert isinstance(tokens, list)
    ident = next(t["id"] for t in tokens if t["name"] == "ci")
    assert run(service, "token", "revoke", ident).exit_code == 0
    assert invoke(["--url", service.url, "--token", secret, "host", "show"]).exit_code == 5

    quota = ok_json(run(service, "quota", "set", "carol", "--vms", "3", "--memory", "2GB",
                        "--json"))
    assert quota == {"user": "carol", "limits": {"vms": 3, "memory_mb": 2048,
                                                 "processors": None, "disk_mb": None},
                     "used": {"vms": 0, "memory_mb": 0, "processors": 0, "disk_mb": 0}}
    assert run(service, "quota", "set", "carol", "--memory", "lots").exit_code == 2
    assert "0 used of 3" in run(service, "quota", "show", "carol").stdout
    assert run(service, "quota", "show", "nobody").exit_code == 3

    assert run(service, "user", "storage", "add", "carol", str(tmp_path)).exit_code == 0
    paths = ok_json(run(service, "user", "storage", "list", "--json"))
    assert paths == [{"to": "carol", "path": str(tmp_path.resolve())}]
    assert run(service, "user", "storage", "add", "carol", "relative/x").exit_code == 2

    realm = ok_json(run(service, "realm", "add", "ldap", "corp", "--url", "ldap://127.0.0.1:1",
                        "--base-dn", "dc=corp,dc=test", "--json"))
    assert realm == {**realm, "name": "corp", "kind": "ldap"}
    assert run(service, "realm", "add", "ldap", "bad", "--url", "http://x",
               "--base-dn", "dc=x").exit_code == 2
    assert "corp" in run(service, "realm", "list").stdout
    run(service, "user", "add", "dave", "--realm", "corp")
    assert run(service, "realm", "remove", "corp").exit_code == 4  # dave is of it
    run(service, "user", "remove", "dave")
    assert run(service, "realm", "remove", "corp").exit_code == 0
    assert run(service, "user", "add", "erin", "--realm", "corp").exit_code == 3


def test_audit_shows_filters_and_verifies(service: Service) -> None:
    run(service, "user", "add", "frank", "--password-stdin", stdin="frank-password\n")
    records = ok_json(run(service, "audit", "--since", "1h", "--json"))
    assert isinstance(records, list) and any(
        r["request"] == "POST /api/v1/access/users" and r["result"] == "ok" for r in records)
    table = run(service, "audit", "--user", "admin-token")
    assert table.exit_code == 0 and "access.manage" in table.stdout
    assert run(service, "audit", "--since", "yesterday-ish").exit_code == 2
    verified = run(service, "audit", "--verify")
    assert verified.exit_code == 0 and "chain verified" in verified.stdout
    log = service.data_dir / "audit.log"
    lines = log.read_text().splitlines(keepends=True)
    edited = json.loads(lines[0])
    edited["who"] = "mallory"
    original = lines[0]
    lines[0] = json.dumps(edited, sort_keys=True, separators=(",", ":")) + "\n"
    log.write_text("".join(lines))
    try:
        broken = run(service, "audit", "--verify")
        assert broken.exit_code == 6 and "broken at line 1" in broken.stderr
    finally:
        log.write_text(original + "".join(log.read_text().splitlines(keepends=True)[1:]))
    assert run(service, "audit", "--verify").exit_code == 0


def test_login_session_goes_to_that_address_only(service: Service, tmp_path: Path) -> None:
    run(service, "user", "add", "gina", "--password-stdin", stdin="gina-password\n")
    run(service, "grant", "Viewer", "--to", "gina")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"),
           "VIRIDIAN_DATA_DIR": str(tmp_path / "no-data")}
    runner = CliRunner(env={**CLEAN_ENV, **env})

    def viridian(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(cli, list(args), input=stdin, prog_name="viridian",
                             catch_exceptions=False)

    refused = viridian("login", service.url, "--user", "gina", "--password-stdin",
                       stdin="not-her-password\n")
    assert refused.exit_code == 5 and "login failed" in refused.stderr
    logged = viridian("login", service.url, "--user", "gina", "--password-stdin",
                      stdin="gina-password\n")
    assert logged.exit_code == 0, logged.output
    assert "as gina (local)" in logged.stdout
    stored = tmp_path / "config" / "viridian" / "sessions.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert viridian("--url", service.url, "host", "show").exit_code == 0
    denied = viridian("--url", service.url, "user", "list")
    assert denied.exit_code == 5 and "gina may not access.manage" in denied.stderr
    # the same service under another name is another address: the session is not sent
    other = service.url.replace("127.0.0.1", "localhost")
    elsewhere = viridian("--url", other, "host", "show")
    assert elsewhere.exit_code == 5 and "no token" in elsewhere.stderr
    assert viridian("logout", service.url).exit_code == 0
    after = viridian("--url", service.url, "host", "show")
    assert after.exit_code == 5
