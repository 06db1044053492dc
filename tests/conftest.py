"""The suite's safety net: no QEMU started by this test run may outlive it.

At the start the run tags its environment (:data:`tests.qemu_processes.RUN_TAG`, a fresh
id; pytest-xdist workers inherit the controller's). Every QEMU started from a test — by
hand, by a ``Worker`` or by a ``viridian serve`` the test runs — inherits the tag. At the
end the controller lists the QEMU processes that still carry it, kills them, names them
and makes the run fail: fixtures must end their QEMU on every path.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from tests.qemu_processes import RUN_TAG, kill, qemu_of_run

MODULE_SECONDS = Path(__file__).with_name("module_seconds.json")
"""Each module's seconds in a past full run (written by scripts/module-seconds.py)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest modules first (a module not in the table counts as a minute): ``--dist
    loadfile`` hands modules to workers in collection order, and a long module handed out
    last leaves the other worker idle until it ends. Order inside a module is kept."""
    seconds: dict[str, int] = json.loads(MODULE_SECONDS.read_text())

    def module_seconds(item: pytest.Item) -> int:
        return seconds.get(item.nodeid.split("::")[0], 60)

    items.sort(key=lambda item: -module_seconds(item))  # stable: module order kept inside


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault(RUN_TAG, uuid.uuid4().hex)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller checks once all workers are done
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
