"""The console's door: nothing is served without the bearer token or a console session;
sessions are HttpOnly + SameSite=Strict cookies; state changes need the CSRF token;
WebSocket upgrades need a session or the token, and a browser's own Origin."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
import websockets

from tests.service.harness import Service

pytestmark = pytest.mark.xdist_group("console")

PAGES = ["/", "/index.html", "/connect.html?vm=x"]
STATIC = ["/static/app.css", "/static/js/manager.js", "/static/vendor/novnc/core/rfb.js"]
WEBSOCKETS = ["/api/v1/vms/x/vnc", "/api/v1/vms/x/console?com=1"]


def login(service: Service) -> tuple[httpx.Client, str]:
    """A client holding a console session, and the session's CSRF token."""
    client = httpx.Client(base_url=service.url, timeout=30)
    answer = client.post("/login", data={"token": service.token},
                         headers={"Origin": service.url})
    assert answer.status_code == 303, answer.text
    page = client.get("/").text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert csrf, page[:500]
    return client, csrf.group(1)


def ws_status(url: str, headers: dict[str, str]) -> int | str:
    """HTTP status of a refused upgrade, or "open" (then closed at once)."""

    async def attempt() -> int | str:
        try:
            async with websockets.connect(url, additional_headers=headers, open_timeout=10):
                return "open"
        except websockets.InvalidStatus as err:
            return int(err.response.status_code)

    return asyncio.run(attempt())


def every_api_route(service: Service) -> list[tuple[str, str]]:
    with service.client() as api:
        spec = httpx.get(service.url + "/openapi.json",
                         headers=api.headers).raise_for_status().json()
    routes = []
    for path, methods in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        routes += [(method.upper(), concrete) for method in methods]
    return routes


def test_nothing_is_served_without_authentication(console_service: Service) -> None:
    anonymous = httpx.Client(base_url=console_service.url, timeout=30)
    for page in PAGES:
        answer = anonymous.get(page)
        assert (answer.status_code, answer.headers.get("location")) == (303, "/login"), page
        assert answer.content == b""
    for path in [*STATIC, "/openapi.json", "/metrics", "/api/v1/events"]:
        assert anonymous.get(path).status_code == 401, path
    routes = every_api_route(console_service)
    assert len(routes) > 30 and ("GET", "/api/v1/events") in routes
    assert ("POST", "/api/v1/disks/new") in routes
    for method, path in routes:
        answer = anonymous.request(method, path, json={})
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "unauthorized"
    ws = console_service.url.replace("http", "ws")
    for path in WEBSOCKETS:
        assert ws_status(ws + path, {}) == 403, path
        assert ws_status(ws + path, {"Cookie": "viridian_session=forged"}) == 403, path
    # a wrong token at the login form gets no session
    refused = anonymous.post("/login", data={"token": "wrong"})
    assert refused.status_code == 401 and "not the admin token" in refused.text
    assert "set-cookie" not in refused.headers


def test_session_cookie_and_csrf(console_service: Service) -> None:
    client = httpx.Client(base_url=console_service.url, timeout=30)
    answer = client.post("/login", data={"token": console_service.token})
    cookie = answer.headers["set-cookie"]
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    assert re.search(r"(?i)\bHttpOnly\b", cookie) and re.search(r"(?i)SameSite=Strict", cookie)
    client, csrf = login(console_service)
    assert client.get("/api/v1/vms").status_code == 200
    assert client.get("/static/vendor/novnc/core/rfb.js").status_code == 200
    # state changes with the cookie need the CSRF token, and our own origin
    spec: dict[str, Any] = {"name": "csrf-probe"}
    no_token = client.post("/api/v1/vms", json=spec)
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["error"]["message"]
    wrong = client.post("/api/v1/vms", json=spec, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    elsewhere = client.post("/api/v1/vms", json=spec, headers={
        "X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert elsewhere.status_code == 403
    assert client.get("/api/v1/vms").json()["vms"] == []  # nothing was created
    made = client.post("/api/v1/vms", json=spec, headers={"X-CSRF-Token": csrf,
                                                          "Origin": console_service.url})
    assert made.status_code == 201, made.text
    gone = client.delete("/api/v1/vms/csrf-probe", headers={"X-CSRF-Token": csrf})
    assert gone.status_code == 200
    # WebSockets: a session is accepted only from our own origin
    ws = console_service.url.replace("http", "ws") + "/api/v1/vms/x/vnc"
    session = f"viridian_session={client.cookies['viridian_session']}"
    assert ws_status(ws, {"Cookie": session, "Origin": "http://evil.example"}) == 403
    assert ws_status(ws, {"Cookie": session}) == 403  # browsers always send Origin
    assert ws_status(ws, {"Cookie": session, "Origin": console_service.url}) == "open"
    bearer = {"Authorization": f"Bearer {console_service.token}"}
    assert ws_status(ws, bearer) == "open"
    assert ws_status(ws, {**bearer, "Origin": "http://evil.example"}) == 403
    # logging out ends the session
    assert client.post("/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/api/v1/vms").status_code == 401
    assert client.get("/").headers.get("location") == "/login"


def test_bearer_api_is_unchanged(console_service: Service) -> None:
    with console_service.client() as api:
        assert api.get("/vms").status_code == 200
        assert api.post("/vms", json={"name": "bearer-probe"}).status_code == 201
        assert api.delete("/vms/bearer-probe").status_code == 200
    wrong = httpx.get(console_service.url + "/api/v1/vms",
                      headers={"Authorization": "Bearer wrong",
                               "Cookie": "viridian_session=forged"})
    assert wrong.status_code == 401


def test_event_stream_with_a_session(console_service: Service) -> None:
    client, _ = login(console_service)
    kinds: dict[str, Any] = {}
    with client.stream("GET", "/api/v1/events?tick_s=0.2") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: ") and event:
                kinds[event] = json.loads(line[len("data: "):])
            if {"vms", "jobs", "host"} <= kinds.keys():
                break
    assert isinstance(kinds["vms"]["vms"], list) and "hostname" in kinds["host"]
    assert client.get("/api/v1/events?tick_s=99").status_code == 400
