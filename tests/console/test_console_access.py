"""The console's access in a real browser (Debian's Chromium via Playwright) against a real
service: the login page offers the realms; a Viewer logs in with a password and is not
offered what it may not do (no New VM, no Start, no Settings, no Administration); a
self-service user with two-factor login is refused a wrong one-time code, then sees only
the VM it owns with Start offered; the admin token reaches the Administration page and
adds a user, grants it a role and makes it a token whose secret is shown once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.service.harness import Service
from viridian.access.totp import totp

pytestmark = [pytest.mark.xdist_group("console")]


@pytest.fixture(scope="module")
def setup(console_service: Service) -> dict[str, str]:
    with console_service.client() as api:
        for call in (
                ("POST", "/access/users", {"name": "viv", "password": "viv-password"}),
                ("POST", "/access/grants", {"role": "Viewer", "to": "viv"}),
                ("POST", "/access/roles", {"name": "Self", "operations": ["vm.create"]}),
                ("POST", "/access/users", {"name": "sam", "password": "sam-password"}),
                ("POST", "/access/grants", {"role": "Self", "to": "sam"}),
                ("POST", "/vms", {"name": "admins-vm", "memory_mb": 64}),
                ("POST", "/vms", {"name": "sams-vm", "memory_mb": 64}),
                ("PUT", "/vms/sams-vm/owner", {"user": "sam"})):
            answer = api.request(call[0], call[1], json=call[2])
            assert answer.status_code in (200, 201), answer.text
        secret = api.post("/access/users/sam/totp").json()["secret"]
    return {"totp": secret}


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


def user_login(page: Any, svc: Service, user: str, password: str, code: str = "") -> None:
    page.goto(svc.url + "/login")
    page.fill("#user", user)
    page.fill("#password", password)
    page.select_option("#realm", "local")
    if code:
        page.fill("#totp", code)
    page.click("#login-user")


def vm_actions(page: Any, vm: str) -> list[str]:
    page.locator(f'#vm-table tr[data-vm="{vm}"]').click()
    page.locator(f'#vm-actions[data-ops-for="{vm}"]').wait_for(state="attached")
    return [b.get_attribute("data-action") for b in page.locator("#vm-actions button").all()]


def host_actions(page: Any) -> list[str]:
    return [b.get_attribute("data-action")
            for b in page.locator("#host-actions button").all()]


def test_login_page_offers_the_realms(page: Any, console_service: Service) -> None:
    page.goto(console_service.url + "/login")
    options = page.locator("#realm option").all_inner_texts()
    assert options[:3] == ["the user's own", "local", "pam"]


def test_viewer_is_not_offered_what_it_may_not_do(page: Any, console_service: Service,
                                                  setup: dict[str, str]) -> None:
    user_login(page, console_service, "viv", "viv-password")
    page.wait_for_url(console_service.url + "/")
    page.locator("#who", has_text="viv (local)").wait_for()
    page.locator('#vm-table tr[data-vm="admins-vm"]').wait_for()
    assert host_actions(page) == ["switches", "host-performance"]
    assert page.locator("#admin-link").is_hidden()
    assert page.locator("#selfservice-link").is_hidden()  # no template.deploy anywhere
    assert vm_actions(page, "admins-vm") == ["vm-performance"]


def test_self_service_user_with_two_factor(page: Any, console_service: Service,
                                           setup: dict[str, str]) -> None:
    wrong = "000000" if totp(setup["totp"], time.time()) != "000000" else "111111"
    user_login(page, console_service, "sam", "sam-password", wrong)
    assert page.locator(".error").inner_text().startswith("login failed")
    user_login(page, console_service, "sam", "sam-password", totp(setup["totp"], time.time()))
    page.wait_for_url(console_service.url + "/")
    page.locator("#who", has_text="sam (local)").wait_for()
    page.locator('#vm-table tr[data-vm="sams-vm"]').wait_for()
    assert page.locator("#vm-table tbody tr").count() == 1
    assert host_actions(page) == ["new-vm"]
    assert "start" in vm_actions(page, "sams-vm")


def test_a_removed_user_is_sent_back_to_the_login_page(page: Any,
                                                       console_service: Service) -> None:
    with console_service.client() as api:
        assert api.post("/access/users", json={"name": "gone", "password": "gone-password"}
                        ).status_code == 201
    user_login(page, console_service, "gone", "gone-password")
    page.wait_for_url(console_service.url + "/")
    page.locator("#who", has_text="gone (local)").wait_for()
    with console_service.client() as api:
        assert api.delete("/access/users/gone").status_code == 200
    page.goto(console_service.url + "/")
    page.wait_for_url(console_service.url + "/login")


def test_admin_page(page: Any, console_service: Service, setup: dict[str, str]) -> None:
    page.goto(console_service.url + "/login")
    page.fill("#token", console_service.token)
    page.click("#login")
    page.wait_for_url(console_service.url + "/")
    page.locator("#admin-link").click()
    page.wait_for_url(console_service.url + "/admin.html")
    page.locator('[data-table="users"] tr[data-key="viv"]').wait_for()
    add = page.locator('[data-form="add-user"]')
    add.locator('[name="name"]').fill("newbie")
    add.locator('[name="realm"]').select_option("local")
    add.locator('[name="password"]').fill("newbie-password")
    add.locator("button").click()
    page.locator('[data-table="users"] tr[data-key="newbie"]').wait_for()
    grant = page.locator('[data-form="grant"]')
    grant.locator('[name="role"]').select_option("Operator")
    grant.locator('[name="to"]').fill("newbie")
    grant.locator('[name="on"]').fill("tag:lab")
    grant.locator("button").click()
    page.locator('[data-table="grants"] td', has_text="tag:lab").wait_for()
    token = page.locator('[data-form="new-token"]')
    token.locator('[name="user"]').fill("newbie")
    token.locator('[name="name"]').fill("ci")
    token.locator("button").click()
    secret = page.locator("#token-secret")
    secret.wait_for()
    assert "(shown only now): vtk_" in secret.inner_text()
    bad = page.locator('[data-form="add-user"]')
    bad.locator('[name="name"]').fill("9 bad")
    bad.locator("button").click()
    page.locator("#admin-error", has_text="invalid user name").wait_for()
    with console_service.client() as api:
        shown = api.get("/access/users/newbie").json()
    assert shown["grants"] == [{"id": shown["grants"][0]["id"], "role": "Operator",
                                "to": "newbie", "on": "tag:lab"}]
