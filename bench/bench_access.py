"""Authorization cost (issue 17): what access control adds to a request, beside the
request's own time, with 1,000 grants and 100 groups; and login time per realm.

- ``decision``: in-process ``AccessControl.authenticate`` (API token, SQLite lookup) +
  ``target`` + ``authorize`` for a user in 10 of the 100 groups, on a VM reached through
  a tag grant (the walk the access gate does per request);
- ``request``: ``GET /api/v1/vms/{name}`` on a real service holding those grants, as the
  bootstrap admin token (no grant is consulted) and as the user's API token (the peer
  pair: same request, with and without the grant walk), medians and their ratio;
- ``login``: ``AccessControl.login`` per realm — local (scrypt), pam (a real account made
  with useradd, removed after), ldap (a real slapd, tests/access/slapd.py).

Prints medians and ratios (``--json`` for the report). ``--quick``: fewer rounds (the
1,000 grants and 100 groups stay).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.access.slapd import ADMIN_DN, ADMIN_PASSWORD, USERS, running_slapd  # noqa: E402
from tests.service.harness import Service  # noqa: E402

from viridian.access import AccessControl  # noqa: E402
from viridian.access.ldap_realm import LdapRealm  # noqa: E402

GRANTS, GROUPS, USER_GROUPS = 1000, 100, 10
ROLES = ("Viewer", "Operator", "VM User")


def _median_us(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def _grants() -> Iterator[tuple[str, str, str]]:
    """(role, @group, scope): GRANTS grants spread over GROUPS groups, VM and tag scopes."""
    for i in range(GRANTS):
        scope = f"vm:vm-{i}" if i % 2 else f"tag:t-{i % 50}"
        yield ROLES[i % len(ROLES)], f"@g{i % GROUPS}", scope


def _populate(access: Callable[[str, str, str], object]) -> None:
    """``access(role, subject, scope)``: one grant, in process or over HTTP."""
    for role, subject, scope in _grants():
        access(role, subject, scope)


def decision(rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="vir-bench-access-") as folder:
        access = AccessControl(Path(folder), "admin-token-for-the-bench")
        try:
            token = _seed(access)
            access.set_tags("vm-id-1", ["t-14"])  # granted to @g14 (a member) as VM User

            def walk() -> None:
                principal = access.authenticate(token)
                assert principal is not None
                access.authorize(principal, "vm.read", access.target("bench-vm", "vm-id-1"))
            walk()
            total = _median_us(walk, rounds)
            principal = access.authenticate(token)
            assert principal is not None
            target = access.target("bench-vm", "vm-id-1")
            policy = _median_us(lambda: access.policy.allows(principal, "vm.read", target),
                                rounds * 10)
            return {"decision_us": round(total, 1), "policy_allows_us": round(policy, 2)}
        finally:
            access.close()


def requests(rounds: int) -> dict[str, float]:
    """The request pair on a real service whose access store was filled before it started
    (1,000 grants through HTTP would take the benchmark's whole budget)."""
    data_dir = Path(tempfile.mkdtemp(prefix="vir-", dir="/tmp"))
    seed = AccessControl(data_dir, "not-the-service-token")
    try:
        token = _seed(seed)
    finally:
        seed.close()
    svc = Service(data_dir)
    try:
        svc.start()
        with svc.client() as api:
            _ok(api.post("/vms", json={"name": "bench-vm", "memory_mb": 64}))
            _ok(api.put("/vms/bench-vm/tags", json={"tags": ["t-14"]}))
        return _request_pair(svc, token, rounds)
    finally:
        svc.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _seed(access: AccessControl) -> str:
    """1,000 grants, 100 groups, the user ``bench`` in 10 of them; its API token."""
    _populate(lambda role, subject, scope: access.grant(role, subject, scope))
    access.add_user("bench", "local", "bench-password")
    for g in range(USER_GROUPS):
        access.set_member(f"g{g * 7}", "bench", True)
    return str(access.new_token("bench", "bench")["secret"])


def _request_pair(svc: Service, token: str, rounds: int) -> dict[str, float]:
    """Median of the same GET as each credential, interleaved round by round and in
    alternating order (a loaded machine slows both alike)."""
    times: dict[str, list[float]] = {"admin_token_ms": [], "user_token_ms": []}
    clients = {label: httpx.Client(base_url=svc.url + "/api/v1", timeout=60, headers={
        "Authorization": f"Bearer {bearer}"}) for label, bearer in (
            ("admin_token_ms", svc.token), ("user_token_ms", token))}
    try:
        for client in clients.values():
            _ok(client.get("/vms/bench-vm"))
        for round_ in range(rounds):
            order = list(clients.items())
            for label, client in order if round_ % 2 else order[::-1]:
                start = time.perf_counter()
                _ok(client.get("/vms/bench-vm"))
                times[label].append((time.perf_counter() - start) * 1000)
    finally:
        for client in clients.values():
            client.close()
    return {label: round(statistics.median(found), 3) for label, found in times.items()}


def _ok(answer: httpx.Response) -> Any:
    assert answer.status_code < 300, answer.text
    return answer.json() if answer.content else None


@contextmanager
def _pam_account() -> Iterator[tuple[str, str]]:
    name, password = f"vb{uuid.uuid4().hex[:8]}", "Bench-Passw0rd!"
    subprocess.run(["useradd", "--no-create-home", name], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}".encode(), check=True)
        yield name, password
    finally:
        subprocess.run(["userdel", name], check=False)


def logins(rounds: int) -> dict[str, float]:
    found: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vir-bench-login-") as folder, \
            running_slapd() as directory:
        access = AccessControl(Path(folder), "admin-token-for-the-bench")
        try:
            access.add_user("loc", "local", "local-password")
            access.add_ldap_realm(LdapRealm("corp", directory.url, directory.base_dn,
                                            ADMIN_DN, ADMIN_PASSWORD))
            access.add_user("alice", "corp")
            cases: list[tuple[str, str, str]] = [("local", "loc", "local-password"),
                                                 ("ldap", "alice", USERS["alice"])]
            with _pam_account() if os.geteuid() == 0 else _no_pam() as account:
                if account:
                    access.add_user(account[0], "pam")
                    cases.insert(1, ("pam", *account))
                for realm, user, password in cases:
                    found[f"{realm}_ms"] = round(_median_us(
                        lambda u=user, p=password: access.login(u, p), rounds) / 1000, 2)
        finally:
            access.close()
    return found


@contextmanager
def _no_pam() -> Iterator[None]:
    yield None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    rounds = 20 if args.quick else 200
    report: dict[str, Any] = {"grants": GRANTS, "groups": GROUPS, "user_groups": USER_GROUPS,
                              "rounds": rounds}
    report.update(decision(rounds * 5))
    report.update(requests(rounds))
    report["login_ms"] = logins(3 if args.quick else 10)
    request_ms = report["admin_token_ms"]
    report["ratio"] = {
        "user_token / admin_token request": round(report["user_token_ms"] / request_ms, 3),
        "decision / request": round(report["decision_us"] / 1000 / request_ms, 4),
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{GRANTS} grants, {GROUPS} groups; the user is in {USER_GROUPS}")
    print(f"authenticate + target + authorize (in process): {report['decision_us']} µs "
          f"(the policy decision alone {report['policy_allows_us']} µs)")
    print(f"GET /vms/bench-vm as admin token: {report['admin_token_ms']} ms; as the user's "
          f"token: {report['user_token_ms']} ms (ratio "
          f"{report['ratio']['user_token / admin_token request']})")
    print(f"decision / request: {report['ratio']['decision / request']}")
    for realm, ms in report["login_ms"].items():
        print(f"login {realm.removesuffix('_ms')}: {ms} ms")


if __name__ == "__main__":
    main()
