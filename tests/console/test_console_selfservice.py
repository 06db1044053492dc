"""The self-service page in a real browser (Debian's Chromium via Playwright) against a
real service (issue 18 part 5): a user granted the "Self-service user" role on one of two
templates logs in, follows the Manager's Self-service link, is offered only that
template, sees its quota, provisions a VM from the page's form (it appears in "My VMs",
running, with its provisioning status, and the quota shows it used), and an over-quota
request shows the service's quota error text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.test_console_access import user_login
from tests.service.harness import Service, tiny_templates

pytestmark = [pytest.mark.guest, pytest.mark.xdist_group("console")]


@pytest.fixture(scope="module")
def setup(console_service: Service, tmp_path_factory: pytest.TempPathFactory) -> None:
    with console_service.client() as api:
        tiny_templates(api, tmp_path_factory.mktemp("ss-console"), "tsrc", "granted", "secret")
        for call in (("POST", "/access/users", {"name": "pat", "password": "pat-password"}),
                     ("POST", "/access/grants", {"role": "Self-service user", "to": "pat",
                                                 "on": "template:granted"}),
                     ("PUT", "/access/quotas/pat", {"vms": 1})):
            answer = api.request(call[0], call[1], json=call[2])
            assert answer.status_code in (200, 201), answer.text


@pytest.fixture(scope="module")
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    yield tab
    context.close()
    assert not errors, errors


def test_self_service_page(page: Any, console_service: Service, setup: None,
                           screenshot_dir: Path) -> None:
    user_login(page, console_service, "pat", "pat-password")
    page.wait_for_url(console_service.url + "/")
    page.locator("#selfservice-link").click()  # the Manager links pat to the page
    page.wait_for_url(console_service.url + "/selfservice.html")
    page.locator("#who", has_text="pat (local)").wait_for()
    page.locator('#templates-table tr[data-template="granted"]').wait_for()
    assert page.locator("#templates-table tbody tr").count() == 1
    assert page.locator("#ss-template option").all_inner_texts() == ["granted"]
    assert page.locator('#quota-table tr[data-quota="vms"]').inner_text().split() == [
        "VMs", "0", "1"]
    page.locator("#no-vms").wait_for()

    page.fill("#ss-name", "pat-vm")
    page.fill("#ss-hostname", "pat-host")
    page.fill("#ss-ssh-key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB pat@laptop")
    page.click("#ss-provision")
    row = page.locator('#my-vms-table tr[data-vm="pat-vm"]')
    row.wait_for()
    row.locator('td[data-col="state"]', has_text="Running").wait_for(timeout=180_000)
    assert row.locator('td[data-col="provisioning"]').inner_text() in (
        "provisioning", "provisioned: ready")
    assert row.locator('[data-action="stop"]').is_visible()
    assert row.locator('[data-action="connect"]').get_attribute(
        "href") == "/connect.html?vm=pat-vm"
    assert page.locator("#my-vms-table tbody tr").count() == 1  # not tsrc: only its own
    page.locator('#quota-table tr[data-quota="vms"] td', has_text="1").first.wait_for()
    assert page.locator('#quota-table tr[data-quota="vms"]').inner_text().split() == [
        "VMs", "1", "1"]
    page.screenshot(path=str(screenshot_dir / "selfservice.png"))

    page.fill("#ss-name", "pat-more")
    page.click("#ss-provision")
    error = page.locator("#ss-error")
    error.wait_for()
    assert "VMs: 1 used + 1 requested > limit 1" in error.inner_text()
    with console_service.client() as api:
        names = sorted(v["name"] for v in api.get("/vms").json()["vms"])
    assert names == ["pat-vm", "tsrc"]  # the refused request made nothing

    row.locator('[data-action="stop"]').click()
    row.locator('td[data-col="state"]', has_text="Off").wait_for(timeout=120_000)
    assert row.locator('[data-action="start"]').is_visible()
