"""Unit tests of the pure parts added for quotas, storage paths, CLI sessions and the
shutdown hook (the service-level proofs are in test_access_selfservice/test_access_cli)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from viridian.access import AccessControl
from viridian.access.confinement import check_paths, paths_in
from viridian.access.quotas import Resources, Usage, check_quota, usage_of
from viridian.cli import credentials
from viridian.errors import Forbidden
from viridian.service.access_hooks import AccessHooks


def test_quota_names_every_limit_passed_with_its_numbers() -> None:
    limits = {"vms": 2, "memory_mb": 1024, "processors": None, "disk_mb": 100}
    check_quota("u", limits, Usage(1, 512, 8, 0), Resources(512, 64, 100), new_vms=1)
    with pytest.raises(Forbidden) as refused:
        check_quota("u", limits, Usage(2, 512, 8, 50), Resources(1024, 2, 60), new_vms=1)
    message = refused.value.message
    assert "VMs: 2 used + 1 requested > limit 2" in message
    assert "memory (MB): 512 used + 1024 requested > limit 1024" in message
    assert "disk (MB): 50 used + 60 requested > limit 100" in message
    assert "processors" not in message  # no limit
    assert refused.value.details["quota"]["vms"] == {"used": 2, "requested": 1, "limit": 2}
    check_quota("u", limits, Usage(9, 9999, 9, 999), Resources(-256, 0, 0))  # shrinking is fine


def test_usage_skips_removed_vms() -> None:
    sizes = {"a": Resources(256, 1, 10), "b": Resources(512, 2, 0)}
    assert usage_of(["a", "b", "gone"], sizes.get) == Usage(2, 768, 3, 10)


def test_paths_in_finds_path_keys_and_absolute_strings() -> None:
    body = {"name": "vm", "vhd": "relative.vhd", "settings": {
        "ide": [{"path": "/a.vhd", "kind": "hard_disk"}], "com1": {"pipe": "/run/p"},
        "notes": "/looks/like/a/path"}, "new_vhd": {"path": "/b.vhd", "size": "1G"},
        "paths": ["/c", "/d"], "count": 3}
    assert sorted(paths_in(body)) == ["/a.vhd", "/b.vhd", "/c", "/d", "/looks/like/a/path",
                                      "/run/p", "relative.vhd"]


def test_check_paths_rules(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / "sub").mkdir(parents=True)
    (root / "out").symlink_to("/etc")
    check_paths("u", [str(root / "sub" / "x.vhd"), str(root)], [str(root)])
    cases = {"x.vhd": "paths must be absolute", f"{root}/sub/../x": "'..' is not allowed",
             f"{root}/out/passwd": "resolves to /etc/passwd", "/etc/shadow": "outside",
             f"{root}x/evil": "outside"}
    for path, phrase in cases.items():
        with pytest.raises(Forbidden, match=phrase):
            check_paths("u", [path], [str(root)])
    with pytest.raises(Forbidden, match="host devices are not allowed"):
        check_paths("u", ["/dev/null"], ["/dev"])
    with pytest.raises(Forbidden, match="ask an administrator"):
        check_paths("u", ["/x"], [])


def test_access_hooks_close_the_access_store(tmp_path: Path) -> None:
    access = AccessControl(tmp_path, "admin")
    asyncio.run(AccessHooks(access, lambda _: None).close())
    with pytest.raises(sqlite3.ProgrammingError):
        access.store.rows("SELECT 1")


def test_cli_sessions_per_normalised_address(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert credentials.normalised_url("LOCALHOST:8080/") == "http://localhost:8080"
    assert credentials.normalised_url("https://h") == "https://h:443"
    credentials.store_session("http://h:1", {"token": "vss_a", "expires": time.time() + 60})
    credentials.store_session("http://old:1", {"token": "vss_b", "expires": time.time() - 1})
    assert credentials.stored_session("h:1") == "vss_a"
    assert credentials.stored_session("http://h:2") is None
    assert credentials.stored_session("http://old:1") is None  # expired
    assert credentials.forget_session("http://h:1/") == "vss_a"
    assert credentials.stored_session("http://h:1") is None
