"""Redfish authentication and accounts on a real AccessControl (SQLite in a temporary data
folder): Redfish sessions are access sessions, Basic is an access login, accounts are
viridian users with their host-wide grant as RoleId; the operation each request needs."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from viridian.access import AccessControl
from viridian.redfish.messages import RedfishError
from viridian.redfish.privileges import Role, operation_for
from viridian.service.redfish.accounts import Accounts
from viridian.service.redfish.auth import RedfishAuth

TOKEN = "admin-token-for-tests-0123456789"
SYS = "/redfish/v1/Systems/abc"


@pytest.fixture
def access(tmp_path: Path) -> Iterator[AccessControl]:
    made = AccessControl(tmp_path, TOKEN)
    yield made
    made.close()


def _basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {raw}"}


def test_a_redfish_session_is_an_access_session(access: AccessControl) -> None:
    auth, accounts = RedfishAuth(access), Accounts(access)
    accounts.create("ops", "ops-password-1", Role.OPERATOR)
    session_id, token = asyncio.run(auth.login("ops", "ops-password-1", "127.0.0.1"))
    principal = access.authenticate(token)  # the JSON API takes the same token
    assert principal is not None and principal.session_id == session_id
    assert [s.id for s in auth.sessions()] == [session_id]
    auth.end(session_id)
    assert access.authenticate(token) is None
    assert asyncio.run(auth.authenticate({"x-auth-token": token}, "127.0.0.1")) is None
    with pytest.raises(RedfishError) as wrong:
        asyncio.run(auth.login("ops", "not-the-password", "127.0.0.1"))
    assert wrong.value.status == 401


def test_basic_is_an_access_login_reused_and_hidden(access: AccessControl) -> None:
    auth, accounts = RedfishAuth(access), Accounts(access)
    accounts.create("reader", "reader-password", Role.READ_ONLY)
    first = asyncio.run(auth.authenticate(_basic("reader", "reader-password"), "h"))
    again = asyncio.run(auth.authenticate(_basic("reader", "reader-password"), "h"))
    assert first is not None and again is not None and first.session_id == again.session_id
    assert auth.sessions() == []  # Basic's session is not a Redfish session
    assert asyncio.run(auth.authenticate(_basic("reader", "wrong-password"), "h")) is None
    admin = asyncio.run(auth.authenticate(_basic("admin", TOKEN), "h"))
    assert admin is not None and admin.bootstrap
    access.set_password("reader", "changed-password")
    auth.forget_basic("reader")
    assert asyncio.run(auth.authenticate(_basic("reader", "reader-password"), "h")) is None


def test_accounts_are_users_and_roles_are_host_grants(access: AccessControl) -> None:
    accounts = Accounts(access)
    made = accounts.create("ro", "ro-password-1", Role.READ_ONLY)
    assert (made.role, made.realm) == (Role.READ_ONLY, "local")
    assert [g.role for g in access.policy.grants if g.subject == "ro"] == ["Viewer"]
    accounts.update("ro", None, Role.OPERATOR)
    assert [g.role for g in access.policy.grants if g.subject == "ro"] == ["Operator"]
    access.add_user("vmuser", "local", "vmuser-password")
    access.grant("VM User", "vmuser", "vm:web")
    assert accounts.get("vmuser").role is Role.DELEGATED
    access.add_user("grouped", "local", "grouped-password")
    access.grant("Administrator", "@admins", "host")
    access.set_member("admins", "grouped", True)
    assert accounts.get("grouped").role is Role.ADMINISTRATOR  # through its group
    assert next(a.id for a in accounts.list()) == "admin"
    with pytest.raises(RedfishError) as taken:
        accounts.create("ro", "another-password", Role.READ_ONLY)
    assert taken.value.status == 409
    with pytest.raises(RedfishError) as builtin:
        accounts.delete("admin")
    assert builtin.value.status == 409
    accounts.delete("ro")
    assert "ro" not in [a.id for a in accounts.list()]


def test_each_request_names_the_viridian_operation_it_needs() -> None:
    assert operation_for("GET", SYS, {}, "u") == "vm.read"
    assert operation_for("POST", f"{SYS}/Actions/ComputerSystem.Reset",
                         {"ResetType": "On"}, "u") == "vm.start"
    assert operation_for("POST", f"{SYS}/Actions/ComputerSystem.Reset",
                         {"ResetType": "ForceOff"}, "u") == "vm.stop"
    assert operation_for("PATCH", f"{SYS}/Bios", {}, "u") == "vm.configure"
    assert operation_for("POST", "/redfish/v1/Systems", {}, "u") == "vm.create"
    assert operation_for("POST", "/redfish/v1/AccountService/Accounts", {}, "u") == \
        "access.manage"
    own = "/redfish/v1/AccountService/Accounts/u"
    assert operation_for("PATCH", own, {"Password": "x"}, "u") == "access.self"
    assert operation_for("PATCH", own, {"RoleId": "Administrator"}, "u") == "access.manage"
    assert operation_for("GET", "/redfish/v1/Managers/viridian", {}, "u") == "host.read"
    assert operation_for("POST", "/redfish/v1/EventService/Subscriptions", {}, "u") == \
        "host.manage"
