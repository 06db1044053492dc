"""The suite's safety net: no QEMU started by this test run may outlive it.

At the start the run tags its environment (:data:`tests.qemu_processes.RUN_TAG`, a fresh
id; pytest-xdist workers inherit the controller's). Every QEMU started from a test — by
hand, by a ``Worker`` or by a ``viridian serve`` the test runs — inherits the tag. At the
end the controller lists the QEMU processes that still carry it, kills them, names them
and makes the run fail: fixtures must end their QEMU on every path. The libvirt daemons
the benchmarks' smoke runs started as their peer are ended too (not a failure: the
benchmarks leave them running on purpose).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.qemu_processes import RUN_TAG, end, kill, peer_daemons_of_run, qemu_of_run

MODULE_SECONDS = Path(__file__).with_name("module_seconds.json")
"""Each module's seconds in a past full run (written by scripts/module-seconds.py)."""


EXCLUSIVE = "machine_to_itself"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest modules first (a module not in the table counts as a minute): ``--dist
    loadfile`` hands modules to workers in collection order, and a long module handed out
    last leaves the other worker idle until it ends. Modules that take the machine to
    themselves (fixture :func:`machine_to_itself`) are kept apart: the longest first, the
    others last. Order inside a module is kept (the sort is stable)."""
    seconds: dict[str, int] = json.loads(MODULE_SECONDS.read_text())

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    exclusive = sorted({module(i) for i in items if EXCLUSIVE in getattr(i, "fixturenames", ())},
                       key=lambda m: -seconds.get(m, 60))

    def rank(item: pytest.Item) -> tuple[int, int]:
        name = module(item)
        if name in exclusive:
            return (0, 0) if name == exclusive[0] else (2, exclusive.index(name))
        return (1, -seconds.get(name, 60))

    items.sort(key=rank)


@pytest.fixture(scope="module")
def machine_to_itself() -> Iterator[None]:
    """One module at a time across the run's xdist workers (a lock file named by the run's
    tag): for a module that loads both cores by itself (20 guests) and for one whose
    guarantees are timed against the host's clock (failover with leases), so the two never
    run side by side. :func:`pytest_collection_modifyitems` puts them at the two ends."""
    path = Path("/tmp") / f"viridian-tests-{os.environ[RUN_TAG]}.lock"
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


KEPT_RUNS = 3
"""Runs whose service logs stay in ``tests.service.harness.SERVICE_LOGS``."""


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault(RUN_TAG, uuid.uuid4().hex)
    if not hasattr(config, "workerinput"):
        _keep_last_runs_logs()


def _keep_last_runs_logs() -> None:
    """Remove the service logs of all but the last :data:`KEPT_RUNS` - 1 earlier runs."""
    from tests.service.harness import SERVICE_LOGS

    with contextlib.suppress(OSError):
        runs = sorted(SERVICE_LOGS.iterdir(), key=lambda p: p.stat().st_mtime)
        for old in runs[:max(0, len(runs) - (KEPT_RUNS - 1))]:
            shutil.rmtree(old, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller checks once all workers are done
    if exitstatus != 0:
        from tests.service.harness import SERVICE_LOGS
        print(f"\nservice logs of this run: {SERVICE_LOGS / os.environ[RUN_TAG]}")
    end(peer_daemons_of_run(os.environ[RUN_TAG]))  # the benchmarks' libvirt, left running
    survivors = qemu_of_run(os.environ[RUN_TAG])
    if not survivors:
        return
    kill(survivors)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  pid {p.pid}: {p.cmdline[:300]}" for p in survivors]
    message = (
        f"{len(survivors)} QEMU process(es) started by this test run survived it "
        "(killed now); a fixture does not end its QEMU on every path:\n" + "\n".join(lines)
    )
    if reporter is not None:
        reporter.write_sep("=", "leaked QEMU processes", red=True, bold=True)
        reporter.write_line(message, red=True)
    else:
        print(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
