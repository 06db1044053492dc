"""DMTF's validators over the whole Redfish tree of a real service (issue 19): the
service validator against the shared DSP8010 CSDL (never downloaded) with 0 failures, 0
"Unable to locate the schema" and at least as many checked properties as the tree has;
the protocol validator (through a TLS listener: its Basic-auth checks need HTTPS) with 0
failures. Also the roles: ReadOnly cannot Reset, an Operator cannot change accounts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.redfish.schemas import SCHEMAS
from tests.redfish.tls_proxy import tls_proxy
from tests.service.harness import Service, act, running_service

BIN = Path(sys.executable).parent
PROFILE = Path(__file__).parents[2] / "src/viridian/redfish/profiles" / \
    "ViridianVirtualHost.v1_0_0.json"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("rf")
    with running_service() as svc, svc.client() as api:
        created = api.post("/vms", json={
            "name": "rf-tree", "memory_mb": 128, "processors": 2,
            "new_vhd": {"path": str(folder / "rf.vhd"), "size": "16MB", "type": "dynamic"}})
        assert created.status_code == 201, created.text
        nic = api.post("/vms/rf-tree/nics", json={})
        assert nic.status_code in (200, 201), nic.text
        yield svc


def _auth(svc: Service) -> tuple[str, str]:
    return ("admin", svc.token)


def _tree_properties(svc: Service) -> tuple[int, int]:
    """(resources, properties) of the tree, walked through every ``@odata.id`` link;
    properties are each resource's own non-annotation members."""
    seen: set[str] = set()
    todo, count = ["/redfish/v1"], 0

    def links(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "@odata.id" and isinstance(value, str):
                    yield value
                else:
                    yield from links(value)
        elif isinstance(node, list):
            for item in node:
                yield from links(item)

    with httpx.Client(base_url=svc.url, auth=_auth(svc)) as client:
        while todo:
            uri = todo.pop().rstrip("/")
            if uri in seen or "/SessionService/Sessions/" in uri:
                continue  # sessions come and go while the validators run
            seen.add(uri)
            body = client.get(uri).json()
            count += sum(1 for key in body if "@" not in key)
            todo.extend(link for link in links(body) if link.rstrip("/") not in seen)
    return len(seen), count


def test_service_validator_passes_the_whole_tree(service: Service, tmp_path: Path) -> None:
    assert (SCHEMAS / "ComputerSystem_v1.xml").is_file(), SCHEMAS
    resources, properties = _tree_properties(service)
    run = subprocess.run(
        [str(BIN / "rf_service_validator"), "--rhost", service.url, "--user", "admin",
         f"--password={service.token}", "--schema_directory", str(SCHEMAS), "--skipschema",
         "--logdir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    logs = "".join(p.read_text() for p in tmp_path.rglob("*.log"))
    assert "Unable to locate" not in output + logs
    row = re.search(r"\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|", output)
    assert row, output[-3000:]
    passed, _, failed, _ = map(int, row.groups())
    print(f"service validator: {passed} passed over {resources} resources "
          f"({properties} properties in the tree)")
    assert failed == 0, output[-5000:]
    assert passed >= properties, (passed, properties)
    validated = set(re.findall(r"Validating (/redfish/v1\S*)\.\.\.", output))
    assert any("/Storage/IDE/Drives/" in uri for uri in validated), sorted(validated)
    assert any("/EthernetInterfaces/1" in uri for uri in validated), sorted(validated)


def test_protocol_validator_has_no_failure(service: Service, tmp_path: Path) -> None:
    with tls_proxy(service.port, tmp_path) as (https_url, cert):
        run = subprocess.run(
            [str(BIN / "rf_protocol_validator"), "--rhost", https_url, "--user", "admin",
             f"--password={service.token}", "--ca-bundle", str(cert), "--avoid-http-redirect",
             "--report-dir", str(tmp_path / "report"), "--report-type", "tsv"],
            capture_output=True, text=True, timeout=600,
            # requests lets REQUESTS_CA_BUNDLE override a session's own verify setting
            env={**os.environ, "REQUESTS_CA_BUNDLE": str(cert), "CURL_CA_BUNDLE": str(cert)})
    summary = re.search(r"PASS: (\d+), WARN: (\d+), FAIL: (\d+)", run.stdout)
    assert summary, run.stdout[-3000:] + run.stderr[-3000:]
    failures = [line for p in (tmp_path / "report").glob("*.tsv")
                for line in p.read_text().splitlines() if "\tFAIL\t" in line]
    print(f"protocol validator: {summary.group(0)}")
    assert int(summary.group(3)) == 0, failures
    assert int(summary.group(1)) > 100


def test_interop_validator_passes_viridians_profile(service: Service, tmp_path: Path) -> None:
    """DMTF's interop validator against the profile of what viridian promises
    (src/viridian/redfish/profiles): every requirement it can test passes."""
    run = subprocess.run(
        [str(BIN / "rf_interop_validator"), "--rhost", service.url, "--user", "admin",
         f"--password={service.token}", "--logdir", str(tmp_path), str(PROFILE)],
        capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    row = re.search(r"\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|", output)
    assert row, output[-3000:]
    passed, warned, failed, untested = map(int, row.groups())
    print(f"interop validator: {passed} passed, {warned} warnings, {failed} failed, "
          f"{untested} not tested")
    assert failed == 0, [line for line in output.splitlines() if "FAIL" in line]
    assert untested == 0 and passed >= 90, output[-3000:]  # writes checked too


def _account(svc: Service, user: str, role: str) -> tuple[str, str]:
    password = f"pw-{user}-Secret1"
    made = httpx.post(f"{svc.url}/redfish/v1/AccountService/Accounts", auth=_auth(svc),
                      json={"UserName": user, "Password": password, "RoleId": role})
    assert made.status_code == 201, made.text
    return user, password


def test_read_only_cannot_reset_and_operator_cannot_change_accounts(service: Service) -> None:
    system = httpx.get(f"{service.url}/redfish/v1/Systems", auth=_auth(service)).json()
    uri = service.url + system["Members"][0]["@odata.id"]
    reader = _account(service, "rf-reader", "ReadOnly")
    assert httpx.get(uri, auth=reader).json()["PowerState"] == "Off"
    refused = httpx.post(f"{uri}/Actions/ComputerSystem.Reset", auth=reader,
                         json={"ResetType": "On"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "Base.1.22.InsufficientPrivilege"
    assert httpx.get(uri, auth=reader).json()["PowerState"] == "Off"

    operator = _account(service, "rf-operator", "Operator")
    accounts = f"{service.url}/redfish/v1/AccountService/Accounts"
    denied = httpx.post(accounts, auth=operator, json={
        "UserName": "sneaky", "Password": "x" * 12, "RoleId": "Administrator"})
    assert denied.status_code == 403, denied.text
    names = [httpx.get(service.url + m["@odata.id"], auth=_auth(service)).json()["UserName"]
             for m in httpx.get(accounts, auth=_auth(service)).json()["Members"]]
    assert "sneaky" not in names and "rf-operator" in names

    # Redfish accounts are viridian users; RoleId is a host-wide grant of a built-in role
    with service.client() as api:
        user = api.get("/access/users/rf-reader").json()
    assert user["realm"] == "local"
    assert [(g["role"], g["on"]) for g in user["grants"]] == [("Viewer", "host")]
    # an Operator may reset (vm.stop passes the gate; the VM is off, so the VM refuses)
    # and change its own password, not its role
    stopped = httpx.post(f"{uri}/Actions/ComputerSystem.Reset", auth=operator,
                         json={"ResetType": "ForceOff"})
    assert stopped.status_code == 409 and "it is Off" in stopped.text, stopped.text
    own = f"{accounts}/rf-operator"
    promoted = httpx.patch(own, auth=operator, json={"RoleId": "Administrator"})
    assert promoted.status_code == 403, promoted.text
    changed = httpx.patch(own, auth=operator, json={"Password": "new-Operator-pw1"})
    assert changed.status_code == 200, changed.text
    assert httpx.get(uri, auth=operator).status_code == 401  # the old password is gone
    operator = ("rf-operator", "new-Operator-pw1")
    # a Redfish session is an access session: its token works on the JSON API too
    login = httpx.post(f"{service.url}/redfish/v1/SessionService/Sessions",
                       json={"UserName": operator[0], "Password": operator[1]})
    assert login.status_code == 201, login.text
    token = login.headers["X-Auth-Token"]
    whoami = httpx.get(f"{service.url}/api/v1/access/whoami",
                       headers={"Authorization": f"Bearer {token}"})
    assert whoami.json()["user"] == "rf-operator", whoami.text
    assert httpx.delete(service.url + login.headers["Location"],
                        headers={"X-Auth-Token": token}).status_code == 204
    assert httpx.get(f"{service.url}/api/v1/access/whoami",
                     headers={"Authorization": f"Bearer {token}"}).status_code == 401

    # a viridian user granted one VM only: role Delegated, Systems lists just that VM
    with service.client() as api:
        assert api.post("/access/users", json={"name": "rf-vmuser",
                                               "password": "vmuser-Secret1"}).is_success
        assert api.post("/access/grants", json={"role": "VM User", "to": "rf-vmuser",
                                                "on": "vm:rf-tree"}).is_success
        api.post("/vms", json={"name": "rf-hidden", "memory_mb": 64}).raise_for_status()
    vm_user = ("rf-vmuser", "vmuser-Secret1")
    mine = httpx.get(f"{service.url}/redfish/v1/Systems", auth=vm_user).json()["Members"]
    assert [m["@odata.id"] for m in mine] == [uri.removeprefix(service.url)]
    assert httpx.get(f"{accounts}/rf-vmuser", auth=vm_user).json()["RoleId"] == "Delegated"
    assert httpx.get(f"{service.url}/redfish/v1/Managers/viridian",
                     auth=vm_user).status_code == 403
    with service.client() as api:
        assert api.delete("/vms/rf-hidden").status_code == 200

    wrong = httpx.get(uri, auth=("rf-reader", "wrong-password"))
    assert wrong.status_code == 401
    assert wrong.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].startswith("Base.")


def test_bad_requests_name_the_allowed_values_and_change_nothing(service: Service) -> None:
    auth = _auth(service)
    system = httpx.get(f"{service.url}/redfish/v1/Systems", auth=auth).json()
    uri = service.url + system["Members"][0]["@odata.id"]
    before = httpx.get(uri, auth=auth).json()

    bad_reset = httpx.post(f"{uri}/Actions/ComputerSystem.Reset", auth=auth,
                           json={"ResetType": "Explode"})
    assert bad_reset.status_code == 400
    error = bad_reset.json()["error"]
    assert error["code"] == "Base.1.22.ActionParameterValueNotInList"
    assert "GracefulShutdown" in error["message"] and "nothing was changed" in error["message"]

    bad_boot = httpx.patch(uri, auth=auth, json={"Boot": {"BootSourceOverrideTarget": "Usb"}})
    assert bad_boot.status_code == 400
    assert "Cd, Hdd, Pxe, Floppy" in bad_boot.json()["error"]["message"]

    stale = httpx.patch(uri, auth=auth, headers={"If-Match": 'W/"stale"'},
                        json={"Boot": {"BootSourceOverrideEnabled": "Once",
                                       "BootSourceOverrideTarget": "Cd"}})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "Base.1.22.PreconditionFailed"

    remote = httpx.post(f"{uri}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia", auth=auth,
                        json={"Image": "http://example.invalid/x.iso"})
    assert remote.status_code == 400
    assert "file://" in remote.json()["error"]["message"]

    after = httpx.get(uri, auth=auth).json()
    assert after["Boot"] == before["Boot"] and after["@odata.etag"] == before["@odata.etag"]
    media = httpx.get(f"{uri}/VirtualMedia/Cd", auth=auth).json()
    assert media["Image"] is None and media["Inserted"] is False


def test_bios_attributes_change_the_vms_settings(service: Service) -> None:
    auth = _auth(service)
    system = httpx.get(f"{service.url}/redfish/v1/Systems", auth=auth).json()
    bios = service.url + system["Members"][0]["@odata.id"] + "/Bios"
    bad = httpx.patch(bios, auth=auth, json={"Attributes": {"BootOrder": "Cd,Cd,Hdd,Pxe"}})
    assert bad.status_code == 400 and "Cd, Hdd, Pxe, Floppy" in bad.json()["error"]["message"]
    changed = httpx.patch(bios, auth=auth, json={"Attributes": {
        "NumLock": True, "BootOrder": "Hdd,Cd,Pxe,Floppy"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["Attributes"] == {"NumLock": True, "BootOrder": "Hdd,Cd,Pxe,Floppy"}
    with service.client() as api:
        settings = api.get("/vms/rf-tree").json()["settings"]["bios"]
    assert settings == {"num_lock": True, "startup_order": ["ide", "cd", "net", "floppy"]}

    # pending settings (@Redfish.Settings): kept until the VM's next start, then applied
    link = changed.json()["@Redfish.Settings"]["SettingsObject"]["@odata.id"]
    pending = service.url + link
    refused = httpx.patch(pending, auth=auth, json={"Attributes": {"Turbo": True}})
    assert refused.status_code == 400 and "allowed: NumLock, BootOrder" in refused.text
    later = httpx.patch(pending, auth=auth, json={"Attributes": {
        "NumLock": False, "BootOrder": "Cd,Hdd,Pxe,Floppy"}})
    assert later.status_code == 200, later.text
    assert later.json()["Attributes"] == {"NumLock": False, "BootOrder": "Cd,Hdd,Pxe,Floppy"}
    assert httpx.get(bios, auth=auth).json()["Attributes"]["NumLock"] is True  # not yet
    with service.client() as api:
        act(api, "rf-tree", "start")
        act(api, "rf-tree", "stop")
        settings = api.get("/vms/rf-tree").json()["settings"]["bios"]
    assert settings == {"num_lock": False, "startup_order": ["cd", "ide", "net", "floppy"]}
    applied = httpx.get(bios, auth=auth).json()
    assert applied["Attributes"] == {"NumLock": False, "BootOrder": "Cd,Hdd,Pxe,Floppy"}
    assert applied["@Redfish.Settings"]["Messages"][0]["MessageId"] == "Base.1.22.Success"
    assert httpx.get(pending, auth=auth).json()["Attributes"] == applied["Attributes"]


def test_post_to_systems_creates_a_vm_from_standard_properties(service: Service) -> None:
    systems = f"{service.url}/redfish/v1/Systems"
    auth = _auth(service)
    capability = httpx.get(systems, auth=auth).json()["@Redfish.CollectionCapabilities"][
        "Capabilities"][0]
    assert capability["UseCase"] == "ComputerSystemConstrainedComposition"
    allowed = httpx.get(service.url + capability["CapabilitiesObject"]["@odata.id"],
                        auth=auth).json()
    assert allowed["Name@Redfish.RequiredOnCreate"] is True
    assert allowed["ProcessorSummary"]["Count@Redfish.AllowableNumbers"] == ["1:4"]
    assert allowed["MemorySummary"]["TotalSystemMemoryGiB@Redfish.AllowableNumbers"] == [
        "0.0078125:0.0009765625:64"]
    made = httpx.post(systems, auth=auth, json={
        "Name": "rf-made", "ProcessorSummary": {"Count": 2},
        "MemorySummary": {"TotalSystemMemoryGiB": 0.25}})
    assert made.status_code == 201, made.text
    assert made.headers["Location"] == made.json()["@odata.id"]
    with service.client() as api:
        vm = api.get("/vms/rf-made").json()
    assert (vm["memory_mb"], vm["processors"], vm["state"]) == (256, 2, "Off")

    nameless = httpx.post(systems, auth=auth, json={"ProcessorSummary": {"Count": 1}})
    assert nameless.status_code == 400
    assert nameless.json()["error"]["code"] == "Base.1.22.CreateFailedMissingReqProperties"
    too_many = httpx.post(systems, auth=auth, json={"Name": "rf-big",
                                                     "ProcessorSummary": {"Count": 999}})
    assert too_many.status_code == 400, too_many.text
    assert "processor" in too_many.json()["error"]["message"]
    with service.client() as api:
        assert api.get("/vms/rf-big").status_code == 404


def test_dmtf_redfish_library_logs_in_and_reads_a_system(service: Service) -> None:
    import redfish

    client = redfish.redfish_client(base_url=service.url, username="admin",
                                    password=service.token, default_prefix="/redfish/v1")
    client.login(auth="session")
    try:
        members = client.get("/redfish/v1/Systems").dict["Members"]
        names = {client.get(m["@odata.id"]).dict["Name"] for m in members}
        assert "rf-tree" in names
    finally:
        client.logout()


def test_a_confined_caller_inserts_media_only_from_its_storage_paths(
        service: Service, tmp_path: Path) -> None:
    """Redfish applies the JSON API's storage-path confinement (issue 17): an Operator (no
    host.manage) may not insert /etc/shadow or a file outside its storage paths, and may
    insert one inside them."""
    operator = _account(service, "rf-media-op", "Operator")
    system = httpx.get(f"{service.url}/redfish/v1/Systems", auth=_auth(service)).json()
    uri = service.url + system["Members"][0]["@odata.id"]
    cd = f"{uri}/VirtualMedia/Cd"
    inside = tmp_path / "granted"
    inside.mkdir()
    iso = inside / "tools.iso"
    iso.write_bytes(b"\0" * 2048)
    with service.client() as api:
        assert api.post("/access/storage-paths",
                        json={"to": "rf-media-op", "path": str(inside)}).is_success
    before = httpx.get(cd, auth=_auth(service)).json()["Image"]
    for image in ("/etc/shadow", f"file://{tmp_path}/elsewhere.iso",
                  f"{inside}/../elsewhere.iso"):
        refused = httpx.post(f"{cd}/Actions/VirtualMedia.InsertMedia", auth=operator,
                             json={"Image": image})
        assert refused.status_code == 403, refused.text
        assert "storage paths" in refused.text or "'..'" in refused.text, refused.text
        assert httpx.get(cd, auth=_auth(service)).json()["Image"] == before
    allowed = httpx.post(f"{cd}/Actions/VirtualMedia.InsertMedia", auth=operator,
                         json={"Image": str(iso)})
    assert allowed.status_code in (200, 204), allowed.text
    assert str(iso) in str(httpx.get(cd, auth=_auth(service)).json()["Image"])
    ejected = httpx.post(f"{cd}/Actions/VirtualMedia.EjectMedia", auth=operator, json={})
    assert ejected.status_code in (200, 204), ejected.text
