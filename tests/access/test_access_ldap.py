"""The ldap realm against a real OpenLDAP (Debian's slapd, started by the test on its own
folder and ports; tests/access/slapd.py): a directory user logs in, its directory groups
reach it through a grant to @group, a wrong password is refused, a user the service does
not know is refused; ldaps:// and StartTLS verify the server against the given CA and
refuse a server they cannot verify; the CLI logs in through the realm too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.access.slapd import ADMIN_DN, ADMIN_PASSWORD, USERS, Directory, running_slapd
from tests.cli.cli_harness import CLEAN_ENV
from tests.service.harness import Service, running_service
from viridian.cli.main import cli


@pytest.fixture(scope="module")
def directory() -> Iterator[Directory]:
    with running_slapd() as found:
        yield found


@pytest.fixture(scope="module")
def service(directory: Directory) -> Iterator[Service]:
    with running_service() as svc:
        with svc.client() as api:
            for realm in ({"name": "corp", "url": directory.url},
                          {"name": "corps", "url": directory.ldaps_url,
                           "ca_file": str(directory.ca_file)},
                          {"name": "corptls", "url": directory.url, "starttls": True,
                           "ca_file": str(directory.ca_file)},
                          {"name": "untrusted", "url": directory.ldaps_url}):
                answer = api.post("/access/realms", json={
                    **realm, "base_dn": directory.base_dn, "bind_dn": ADMIN_DN,
                    "bind_password": ADMIN_PASSWORD})
                assert answer.status_code == 201, answer.text
                assert answer.json()["bind_password"] == "***"
            for user in USERS:
                assert api.post("/access/users", json={"name": user, "realm": "corp"}
                                ).status_code == 201
            assert api.post("/access/grants", json={"role": "Operator", "to": "@vmadmins",
                                                    "on": "host"}).status_code == 201
        yield svc


def login(svc: Service, user: str, password: str, realm: str | None = None) -> httpx.Response:
    body = {"user": user, "password": password, **({"realm": realm} if realm else {})}
    return httpx.post(svc.url + "/api/v1/access/login", json=body, timeout=60)


def session(svc: Service, token: str) -> httpx.Client:
    return httpx.Client(base_url=svc.url + "/api/v1", timeout=60,
                        headers={"Authorization": f"Bearer {token}"})


def test_directory_user_and_group_grant(service: Service) -> None:
    answer = login(service, "alice", USERS["alice"], "corp")
    assert answer.status_code == 200, answer.text
    assert answer.json()["realm"] == "ldap:corp"
    assert sorted(answer.json()["groups"]) == ["staff", "vmadmins"]
    with session(service, answer.json()["token"]) as alice:
        assert alice.get("/host").status_code == 200  # Operator through @vmadmins
        assert alice.post("/host/shutdown").status_code == 403
    bob = login(service, "bob", USERS["bob"])
    assert bob.status_code == 200 and bob.json()["groups"] == ["staff"]
    with session(service, bob.json()["token"]) as client:
        denied = client.get("/host")
        assert denied.status_code == 403 and "bob may not host.read" in denied.text


def test_wrong_password_and_unknown_users_are_refused(service: Service) -> None:
    # (at most 4 failures per module: 5 from one address lock that address out)
    assert login(service, "alice", USERS["bob"], "corp").status_code == 401
    assert login(service, "alice", "", "corp").status_code == 401  # never an anonymous bind
    assert login(service, "carol", "whatever-pw", "corp").status_code == 401  # not added
    with service.client() as api:
        records = api.get("/access/audit", params={"user": "alice"}).json()["records"]
    assert [r["result"] for r in records if r["operation"] == "login"].count("denied") == 2


@pytest.mark.parametrize("realm", ["corps", "corptls"])
def test_tls_realms_verify_the_server(service: Service, directory: Directory,
                                      realm: str) -> None:
    with service.client() as api:
        api.delete("/access/users/alice")
        assert api.post("/access/users", json={"name": "alice", "realm": realm}
                        ).status_code == 201
    try:
        answer = login(service, "alice", USERS["alice"])
        assert answer.status_code == 200, answer.text
        assert "vmadmins" in answer.json()["groups"]
    finally:
        with service.client() as api:
            api.delete("/access/users/alice")
            api.post("/access/users", json={"name": "alice", "realm": "corp"})


def test_an_unverifiable_server_is_refused(service: Service) -> None:
    with service.client() as api:
        api.post("/access/users", json={"name": "mallory", "realm": "untrusted"})
    answer = login(service, "mallory", "anything-at-all")
    assert answer.status_code == 401
    assert "LDAP realm untrusted" in answer.json()["error"]["message"]


def test_cli_logs_in_through_the_realm(service: Service, tmp_path: Path) -> None:
    runner = CliRunner(env={**CLEAN_ENV, "XDG_CONFIG_HOME": str(tmp_path),
                            "VIRIDIAN_DATA_DIR": str(tmp_path / "none")})
    result = runner.invoke(cli, ["login", service.url, "--user", "bob", "--realm", "corp",
                                 "--password-stdin"], input=USERS["bob"] + "\n",
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "as bob (ldap:corp)" in result.stdout
