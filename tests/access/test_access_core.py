"""The access package's pure parts and its store, without a service: TOTP against RFC 6238's
test vectors, password hashes, the login limiter, the policy's decisions, tokens and
sessions, and the audit chain catching an edited line."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from viridian.access import AccessControl, Target
from viridian.access.audit import read_records, verify_chain
from viridian.access.lockout import LoginLimiter
from viridian.access.passwords import hash_password, verify_password
from viridian.access.totp import hotp, totp, verify_totp
from viridian.errors import BadRequest, Forbidden, Unauthorized

RFC6238_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of "12345678901234567890"


def test_totp_matches_rfc_6238_appendix_b() -> None:
    for now, code in ((59, "287082"), (1111111109, "081804"), (1234567890, "005924"),
                      (2000000000, "279037")):
        assert totp(RFC6238_SECRET, now) == code
    assert hotp(RFC6238_SECRET, 0) == "755224"  # RFC 4226 appendix D
    assert verify_totp(RFC6238_SECRET, "287082", 59 + 30)  # one step of drift
    assert not verify_totp(RFC6238_SECRET, "287082", 59 + 90)


def test_password_hash_round_trip_and_refusals() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("x", "garbage")
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")


def test_limiter_locks_a_user_out_and_lets_it_back_later() -> None:
    now = [0.0]
    limiter = LoginLimiter(clock=lambda: now[0], max_failures=3, lockout_s=60)
    for _ in range(3):
        limiter.failed("bob", "10.0.0.1")
    assert limiter.retry_after("bob", "127.0.0.9") == 60  # the user, from anywhere
    assert limiter.retry_after("carol", "10.0.0.1") == 60  # anyone, from that source
    now[0] = 61
    assert limiter.retry_after("bob", "10.0.0.1") == 0


@pytest.fixture
def access(tmp_path: Path) -> AccessControl:
    control = AccessControl(tmp_path, "the-admin-token")
    yield control
    control.close()


def test_store_files_are_private(access: AccessControl, tmp_path: Path) -> None:
    for name in ("access.sqlite", "audit.log"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name


def test_roles_grants_scopes_owner_and_narrow_tokens(access: AccessControl) -> None:
    access.add_user("ann", password="ann-password")
    access.add_user("ben", password="ben-password")
    access.set_member("ops", "ben", True)
    access.grant("VM User", "ann", "vm:web")
    access.grant("Operator", "@ops", "tag:prod")
    ann = access.authenticate(access.login("ann", "ann-password")["token"])
    ben = access.authenticate(access.login("ben", "ben-password")["token"])
    assert ann is not None and ben is not None and ben.groups == {"ops"}
    web, db = Target(vm="web", vm_id="1"), Target(vm="db", vm_id="2", tags=frozenset({"prod"}))
    access.authorize(ann, "vm.start", web)
    with pytest.raises(Forbidden, match=r"ann may not vm\.configure on vm:web"):
        access.authorize(ann, "vm.configure", web)
    with pytest.raises(Forbidden):
        access.authorize(ann, "vm.start", db)
    access.authorize(ben, "vm.checkpoint", db)
    with pytest.raises(Forbidden):
        access.authorize(ben, "host.manage", Target())
    access.authorize(ann, "vm.delete", Target(vm="mine", vm_id="3", owner="ann"))
    narrow = access.authenticate(access.new_token("ben", "ro", role="Viewer")["secret"])
    assert narrow is not None
    access.authorize(narrow, "vm.read", db)
    with pytest.raises(Forbidden, match="token role Viewer"):
        access.authorize(narrow, "vm.checkpoint", db)
    assert not access.policy.sees_every_vm(ann)


def test_tokens_revoke_sessions_expire_and_bootstrap_is_never_locked(
        access: AccessControl) -> None:
    access.add_user("cat", password="cat-password")
    secret = access.new_token("cat", "ci")["secret"]
    assert access.authenticate(secret) is not None
    assert all("secret" not in t and secret not in json.dumps(t) for t in access.tokens())
    access.revoke_token(secret[4:16])
    assert access.authenticate(secret) is None
    session = access.login("cat", "cat-password")
    principal = access.authenticate(session["token"])
    assert principal is not None and principal.session_id
    access.expire_session(principal.session_id)
    assert access.authenticate(session["token"]) is None
    for _ in range(6):
        with pytest.raises(Unauthorized):
            access.login("cat", "wrong-password", source="1.2.3.4")
    with pytest.raises(Unauthorized, match="locked"):
        access.login("cat", "cat-password", source="1.2.3.4")
    bootstrap = access.authenticate("the-admin-token")
    assert bootstrap is not None and bootstrap.bootstrap


def test_totp_is_required_once_enabled(access: AccessControl) -> None:
    access.add_user("dan", password="dan-password")
    secret = access.enable_totp("dan")["secret"]
    with pytest.raises(Unauthorized):
        access.login("dan", "dan-password")
    import time
    assert access.login("dan", "dan-password", totp=totp(secret, time.time()))["token"]


def test_bad_input_names_the_allowed_values(access: AccessControl) -> None:
    with pytest.raises(BadRequest, match="allowed: host, vm:NAME, tag:TAG"):
        access.grant("Viewer", "@g", "planet:earth")
    with pytest.raises(BadRequest, match=r"unknown operation 'vm\.fly'"):
        access.new_role("Pilot", ["vm.fly"])
    with pytest.raises(BadRequest, match="needs a password"):
        access.add_user("eve")
    assert access.list_users() == []


def test_audit_chain_verifies_and_catches_an_edited_line(access: AccessControl) -> None:
    for n in range(5):
        access.audit.append(who=f"user{n}", operation="vm.start", target="vm:x", result="ok")
    path = access.audit.path
    assert verify_chain(read_records(path), access.audit.head).ok
    lines = path.read_text().splitlines()
    edited = json.loads(lines[2])
    edited["who"] = "somebody-else"
    lines[2] = json.dumps(edited, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    verdict = verify_chain(read_records(path), access.audit.head)
    assert (verdict.ok, verdict.bad_line) == (False, 3)
    path.write_text("\n".join(path.read_text().splitlines()[:2]) + "\n")  # cut the tail
    assert "cut" in verify_chain(read_records(path), access.audit.head).reason
