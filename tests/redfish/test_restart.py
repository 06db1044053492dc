"""What Redfish keeps outlives a service restart (the catalog): event subscriptions (listed
and still receiving events; a deleted one stays gone), a VM's boot source override and its
pending BIOS settings."""

from __future__ import annotations

import time

import httpx

from tests.redfish.listener import Listener
from tests.service.harness import running_service

SUBS = "/redfish/v1/EventService/Subscriptions"
TEST_EVENT = "/redfish/v1/EventService/Actions/EventService.SubmitTestEvent"


def _members(url: str, auth: tuple[str, str]) -> list[str]:
    return [m["@odata.id"] for m in httpx.get(url + SUBS, auth=auth).json()["Members"]]


def test_subscriptions_survive_a_restart_and_still_receive_events() -> None:
    listener = Listener()
    try:
        with running_service() as svc:
            auth = ("admin", svc.token)
            kept = httpx.post(svc.url + SUBS, auth=auth,
                              json={"Destination": listener.url, "Context": "kept"})
            dropped = httpx.post(svc.url + SUBS, auth=auth,
                                 json={"Destination": listener.url, "Context": "dropped"})
            assert kept.status_code == dropped.status_code == 201, kept.text
            gone = httpx.delete(svc.url + dropped.headers["Location"], auth=auth)
            assert gone.status_code == 204
            with svc.client() as api:
                vm = api.post("/vms", json={"name": "rf-kept", "memory_mb": 64}).json()
            system = f"{svc.url}/redfish/v1/Systems/{vm['id']}"
            boot = {"BootSourceOverrideEnabled": "Continuous", "BootSourceOverrideTarget": "Pxe"}
            assert httpx.patch(system, auth=auth, json={"Boot": boot}).status_code == 200
            assert httpx.patch(f"{system}/Bios/Settings", auth=auth, json={
                "Attributes": {"NumLock": True}}).status_code == 200
            svc.stop()
            svc.start(timeout=120)  # a loaded machine probes and starts slowly
            shown = httpx.get(system, auth=auth).json()["Boot"]
            assert {k: shown[k] for k in boot} == boot
            pending = httpx.get(f"{system}/Bios/Settings", auth=auth).json()
            assert pending["Attributes"]["NumLock"] is True
            assert httpx.get(f"{system}/Bios", auth=auth).json()["Attributes"][
                "NumLock"] is False  # still pending: the VM has not started
            assert _members(svc.url, auth) == [kept.headers["Location"]]
            sub = httpx.get(svc.url + kept.headers["Location"], auth=auth).json()
            assert (sub["Destination"], sub["Context"]) == (listener.url, "kept")
            sent = httpx.post(svc.url + TEST_EVENT, auth=auth, json={})
            assert sent.status_code == 204, sent.text
            deadline = time.monotonic() + 60
            while not listener.events:
                assert time.monotonic() < deadline, "no event after the restart"
                time.sleep(0.2)
            assert [ev["Context"] for ev in listener.events] == ["kept"]
    finally:
        listener.close()
