"""The console's Failover Cluster pane in a real browser (Debian's Chromium via
Playwright) against a real service that is the one member of a cluster on a real etcd
(issue 15 part 6; docs/architecture.md, "Failover cluster: the console"):

- the admin opens the pane: it lists the host Up with its free memory and the etcd
  health; Drain from the page pauses the host (the API says Paused too), Resume brings
  it back Up — the table follows by itself (polling);
- a Viewer (cluster.read only) sees the pane without Drain/Resume; a VM User (no
  cluster.read) is not offered the pane at all.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.etcd_members import etcd_cluster
from tests.console.test_console_access import user_login
from tests.service.harness import Service, running_service

pytestmark = [pytest.mark.xdist_group("console")]

HOST = "c1"


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service that created cluster ``cc`` (one etcd member) as host ``c1``; users
    ``viv`` (Viewer) and ``vmu`` (VM User)."""
    with etcd_cluster(tmp_path_factory.mktemp("cc-etcd"), size=1) as etcd, \
            running_service() as service:
        try:
            with service.client() as api:
                made = api.post("/cluster", json={"etcd": etcd.endpoints[0], "name": "cc",
                                                  "host": HOST})
                assert made.status_code == 201, made.text
                for user, role in (("viv", "Viewer"), ("vmu", "VM User")):
                    for path, body in (("/access/users", {"name": user,
                                                          "password": f"{user}-password"}),
                                       ("/access/grants", {"role": role, "to": user})):
                        answer = api.post(path, json=body)
                        assert answer.status_code == 201, answer.text
            yield service
        finally:
            with contextlib.suppress(OSError, ValueError):
                guard = service.data_dir / "cluster" / "guard.lock.pid"
                os.kill(int(guard.read_text()), signal.SIGKILL)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    yield tab
    context.close()
    assert not errors, errors


def _state(page: Any) -> Any:
    return page.locator(f'#cluster-hosts tr[data-host="{HOST}"] td[data-col="state"]')


def _api_state(service: Service) -> str:
    with service.client() as api:
        return str(api.get("/cluster").json()["hosts"][0]["state"])


def test_admin_sees_the_host_and_drains_and_resumes_it_from_the_page(
        page: Any, member: Service) -> None:
    page.goto(member.url + "/login")
    page.fill("#token", member.token)
    page.click("#login")
    page.wait_for_url(member.url + "/")
    entry = page.locator("#tree-cluster")
    entry.wait_for()
    entry.click()
    page.locator(f'#cluster-hosts tr[data-host="{HOST}"][data-state="Up"]').wait_for()
    summary = page.locator("#cluster-summary").inner_text()
    assert "Cluster cc" in summary and "etcd: 1 of 1 members healthy" in summary, summary
    free = page.locator(f'#cluster-hosts tr[data-host="{HOST}"] td[data-col="free"]')
    assert free.inner_text().endswith(" MB") and free.inner_text() != "0 MB"

    page.locator(f'#cluster-hosts button[data-action="drain"][data-host="{HOST}"]').click()
    page.locator(f'#cluster-hosts tr[data-host="{HOST}"][data-state="Paused"]').wait_for()
    assert _api_state(member) == "Paused"
    page.locator(f'#cluster-hosts button[data-action="resume"][data-host="{HOST}"]').click()
    page.locator(f'#cluster-hosts tr[data-host="{HOST}"][data-state="Up"]').wait_for()
    assert _state(page).inner_text() == "Up"
    assert _api_state(member) == "Up"


def test_viewer_sees_the_cluster_without_actions(page: Any, member: Service) -> None:
    user_login(page, member, "viv", "viv-password")
    page.wait_for_url(member.url + "/")
    page.locator("#tree-cluster").click()
    page.locator(f'#cluster-hosts tr[data-host="{HOST}"]').wait_for()
    assert page.locator("#cluster-hosts button").count() == 0


def test_vm_user_is_not_offered_the_cluster(page: Any, member: Service) -> None:
    user_login(page, member, "vmu", "vmu-password")
    page.wait_for_url(member.url + "/")
    page.locator("#live-indicator.on").wait_for()
    page.locator("#who").filter(has_text="vmu").wait_for()
    assert page.locator("#tree-cluster").is_hidden()
