"""The Redfish tree's handlers: read the service through the capability, map with
:mod:`viridian.redfish`, change VMs through the core's requests and the one settings
path. Each returns a Starlette response built by :mod:`.http`."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from starlette.responses import Response, StreamingResponse

from viridian import __version__
from viridian.access.confinement import check_paths
from viridian.model.limits import MEMORY_MAX_MB, MEMORY_MIN_MB, PROCESSOR_COUNT_MAX
from viridian.redfish import REDFISH_ROOT, odata
from viridian.redfish import devices as dev
from viridian.redfish import services as svc
from viridian.redfish import systems as sys_
from viridian.redfish.boot import ENABLED, TARGET_NAMES, BootOverride
from viridian.redfish.messages import (
    RedfishError,
    action_value_not_in_list,
    not_found,
    not_in_list,
)
from viridian.redfish.power import RESET_TYPES
from viridian.redfish.privileges import ASSIGNABLE, Role, assignable
from viridian.service.redfish.http import etag_of, json_response
from viridian.service.redfish.routes import Call, Handler

R = REDFISH_ROOT
RW = "GET, HEAD, PATCH"


def _ok(call: Call, body: dict[str, Any], allow: str = "GET, HEAD", status: int = 200,
        headers: dict[str, str] | None = None) -> Response:
    return json_response(body, status, allow, headers, head=call.head)


def _no_content() -> Response:
    return Response(status_code=204, headers={"OData-Version": "4.0"})


# --- root -----------------------------------------------------------------------------

async def redfish_version(call: Call) -> Response:
    return _ok(call, {"v1": f"{R}/"})


async def root(call: Call) -> Response:
    return _ok(call, odata.service_root(call.redfish.service_uuid, "viridian", __version__))


async def metadata(call: Call) -> Response:
    return Response(b"" if call.head else odata.metadata_xml().encode(),
                    media_type="application/xml",
                    headers={"OData-Version": "4.0", "Allow": "GET, HEAD"})


async def odata_document(call: Call) -> Response:
    return _ok(call, odata.service_document())


# --- systems --------------------------------------------------------------------------

async def systems(call: Call) -> Response:
    """The VMs the caller may see (``vm.read``)."""
    ids = [i for i in call.redfish.system_ids() if call.may("vm.read", i)]
    body = odata.collection("ComputerSystemCollection", sys_.SYSTEMS, "Computer systems",
                            [f"{sys_.SYSTEMS}/{i}" for i in ids])
    body["@Redfish.CollectionCapabilities"] = sys_.collection_capabilities()
    return _ok(call, body, "GET, HEAD, POST")


async def system_capabilities(call: Call) -> Response:
    """What a POST to the Systems collection takes (``@Redfish.AllowableNumbers``)."""
    return _ok(call, sys_.creation_capabilities(MEMORY_MIN_MB, MEMORY_MAX_MB,
                                                PROCESSOR_COUNT_MAX))


async def system(call: Call) -> Response:
    return _ok(call, sys_.computer_system(call.redfish.view(call.params["sid"])), RW)


async def create_system(call: Call) -> Response:
    """Create a VM: ``Name`` (required), ``ProcessorSummary.Count``,
    ``MemorySummary.TotalSystemMemoryGiB`` — standard properties, no OEM extension."""
    body = call.body
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise RedfishError(400, "CreateFailedMissingReqProperties", "Name")
    unknown = sorted(set(body) - {"Name", "ProcessorSummary", "MemorySummary"})
    if unknown:
        raise RedfishError(400, "PropertyUnknown", unknown[0],
                           detail=f"unknown property {unknown[0]}; allowed: "
                                  f"{', '.join(sys_.CREATE_PROPERTIES)} (see "
                                  f"{sys_.CAPABILITIES_URI}); nothing was changed")
    count = (body.get("ProcessorSummary") or {}).get("Count")
    gib = (body.get("MemorySummary") or {}).get("TotalSystemMemoryGiB")
    memory_mb = round(float(gib) * 1024) if gib is not None else None
    vm = await call.redfish.core.create_vm(name, {}, memory_mb=memory_mb, processors=count,
                                           dvd=None, vhd=None)
    if call.principal is not None and not call.principal.bootstrap:
        call.redfish.auth.access.set_owner(vm["id"], call.principal.user)  # self-service
    uri = f"{sys_.SYSTEMS}/{vm['id']}"
    return _ok(call, sys_.computer_system(call.redfish.view(vm["id"])), status=201,
               headers={"Location": uri})


async def patch_system(call: Call) -> Response:
    """PATCH ``Boot`` (override enabled/target) with ``If-Match``."""
    view = call.redfish.view(call.params["sid"])
    _check_etag(call, sys_.computer_system(view))
    boot = call.body.get("Boot")
    others = sorted(set(call.body) - {"Boot"})
    if others:
        raise RedfishError(400, "PropertyNotWritable", others[0],
                           detail=f"{others[0]} cannot be changed here; writable: Boot; "
                                  "nothing was changed")
    if not isinstance(boot, dict) or not boot:
        raise RedfishError(400, "NoOperation")
    enabled = boot.get("BootSourceOverrideEnabled", view.boot.enabled)
    target = boot.get("BootSourceOverrideTarget", view.boot.target)
    if enabled not in ENABLED:
        raise not_in_list(enabled, "BootSourceOverrideEnabled", ENABLED)
    if target not in TARGET_NAMES:
        raise not_in_list(target, "BootSourceOverrideTarget", TARGET_NAMES)
    if boot.get("BootSourceOverrideMode", "Legacy") != "Legacy":
        raise not_in_list(boot["BootSourceOverrideMode"], "BootSourceOverrideMode",
                          ["Legacy"])
    call.redfish.set_boot(view.id, BootOverride(enabled, target))
    return _ok(call, sys_.computer_system(call.redfish.view(view.id)), RW)


def _check_etag(call: Call, current: dict[str, Any]) -> None:
    wanted = call.headers.get("if-match")
    if wanted and wanted.strip() != "*" and etag_of(current) not in [
            w.strip() for w in wanted.split(",")]:
        raise RedfishError(412, "PreconditionFailed")


async def reset_info(call: Call) -> Response:
    return _ok(call, sys_.reset_action_info(call.redfish.view(call.params["sid"])))


async def reset(call: Call) -> Response:
    """ComputerSystem.Reset → the VM's request as a job; 202 with its task monitor."""
    view = call.redfish.view(call.params["sid"])
    reset_type = call.body.get("ResetType")
    if reset_type is None:
        raise RedfishError(400, "ActionParameterMissing", "ComputerSystem.Reset", "ResetType")
    if reset_type not in RESET_TYPES:
        raise action_value_not_in_list(reset_type, "ResetType", "ComputerSystem.Reset",
                                       list(RESET_TYPES))
    job = call.redfish.core.request(view.id, RESET_TYPES[reset_type].value, timeout_s=None)
    return _task_accepted(call, job)


def _task_accepted(call: Call, job: dict[str, Any]) -> Response:
    task = svc.task(job)
    return _ok(call, task, status=202, headers={"Location": task["TaskMonitor"]})


async def processors(call: Call) -> Response:
    return _ok(call, dev.processors(call.redfish.view(call.params["sid"])))


async def processor(call: Call) -> Response:
    view = call.redfish.view(call.params["sid"])
    index = call.params["pid"].removeprefix("CPU")
    if not index.isdigit() or int(index) >= view.settings.processor.count:
        raise not_found("Processor", call.params["pid"])
    return _ok(call, dev.processor(view, int(index)))


async def memory_collection(call: Call) -> Response:
    return _ok(call, dev.memory_collection(call.redfish.view(call.params["sid"])))


async def memory(call: Call) -> Response:
    if call.params["mid"] != "DIMM0":
        raise not_found("Memory", call.params["mid"])
    return _ok(call, dev.memory(call.redfish.view(call.params["sid"])))


async def nics(call: Call) -> Response:
    return _ok(call, dev.ethernet_interfaces(call.redfish.view(call.params["sid"])))


async def nic(call: Call) -> Response:
    view = call.redfish.view(call.params["sid"])
    number = call.params["nid"]
    if not number.isdigit() or not 1 <= int(number) <= len(view.settings.network_adapters):
        raise not_found("EthernetInterface", number)
    return _ok(call, dev.ethernet_interface(view, int(number)))


async def storages(call: Call) -> Response:
    return _ok(call, dev.storage_collection(call.redfish.view(call.params["sid"])))


def _storage_id(call: Call) -> str:
    view = call.redfish.view(call.params["sid"])
    if call.params["st"] not in dev.storage_ids(view):
        raise not_found("Storage", call.params["st"])
    return call.params["st"]


async def storage(call: Call) -> Response:
    return _ok(call, dev.storage(call.redfish.view(call.params["sid"]), _storage_id(call)))


def _disk(call: Call) -> dev.DiskRef:
    view = call.redfish.view(call.params["sid"])
    for ref in dev.disks(view):
        if ref.storage == call.params["st"] and ref.drive == call.params["did"]:
            return ref
    raise not_found("Drive", call.params["did"])


async def drive(call: Call) -> Response:
    return _ok(call, dev.drive(call.redfish.view(call.params["sid"]), _disk(call)))


async def volumes(call: Call) -> Response:
    return _ok(call, dev.volumes(call.redfish.view(call.params["sid"]), _storage_id(call)))


async def volume(call: Call) -> Response:
    return _ok(call, dev.volume(call.redfish.view(call.params["sid"]), _disk(call)))


async def media_collection(call: Call) -> Response:
    return _ok(call, dev.virtual_media_collection(call.redfish.view(call.params["sid"])))


def _media_id(call: Call) -> str:
    if call.params["vmid"] not in dev.media_ids(call.redfish.view(call.params["sid"])):
        raise not_found("VirtualMedia", call.params["vmid"])
    return call.params["vmid"]


async def media(call: Call) -> Response:
    return _ok(call, dev.virtual_media(call.redfish.view(call.params["sid"]), _media_id(call)))


async def insert_media(call: Call) -> Response:
    """VirtualMedia.InsertMedia: ``Image`` a ``file://`` URI or absolute host path."""
    media_id = _media_id(call)
    image = call.body.get("Image")
    action = "VirtualMedia.InsertMedia"
    if not isinstance(image, str):
        raise RedfishError(400, "ActionParameterMissing", action, "Image")
    path = dev.image_path(image)
    if path is None:
        raise RedfishError(400, "ActionParameterValueFormatError", image, "Image", action,
                           detail=f"Image '{image}' is not a file:// URI or absolute host "
                                  "path; nothing was changed")
    protocol = call.body.get("TransferProtocolType")
    if protocol is not None:  # the image is a host file: no transfer protocol applies
        raise RedfishError(400, "ActionParameterNotSupported", "TransferProtocolType", action,
                           detail="TransferProtocolType is not supported: Image names a "
                                  "file on the host; nothing was changed")
    _confine(call, path)
    await call.redfish.set_media(call.params["sid"], media_id, path)
    return _no_content()


def _confine(call: Call, path: str) -> None:
    """A caller without ``host.manage`` names only files inside its storage paths, as on
    the JSON API (docs/architecture.md, "Access": storage-path confinement)."""
    principal, access = call.principal, call.redfish.auth.access
    if principal is None or principal.bootstrap or not access.confined(principal):
        return
    roots = [grant["path"] for grant in access.storage_paths(principal.subjects())]
    check_paths(principal.user, [path], roots)


async def eject_media(call: Call) -> Response:
    await call.redfish.set_media(call.params["sid"], _media_id(call), None)
    return _no_content()


async def bios(call: Call) -> Response:
    view = call.redfish.view(call.params["sid"])
    return _ok(call, dev.bios(view, call.redfish.pending_bios.applied.get(view.id)), RW)


async def bios_settings(call: Call) -> Response:
    view = call.redfish.view(call.params["sid"])
    return _ok(call, dev.bios_settings(view, call.redfish.pending_bios.get(view.id)), RW)


async def patch_bios_settings(call: Call) -> Response:
    """PATCH ``Attributes`` to apply at the VM's next start (any state; checked now)."""
    view = call.redfish.view(call.params["sid"])
    _check_etag(call, dev.bios_settings(view, call.redfish.pending_bios.get(view.id)))
    attributes = _bios_attributes(call)
    dev.bios_patch(attributes)  # refuses unknown attributes and values: nothing kept
    call.redfish.pending_bios.add(view.id, attributes)
    return _ok(call, dev.bios_settings(view, call.redfish.pending_bios.get(view.id)), RW)


def _bios_attributes(call: Call) -> dict[str, Any]:
    attributes = call.body.get("Attributes")
    if set(call.body) - {"Attributes", "@odata.etag"} or not isinstance(attributes, dict) \
            or not attributes:
        raise RedfishError(400, "PropertyMissing", "Attributes",
                           detail="give Attributes with NumLock and/or BootOrder; nothing "
                                  "was changed")
    return attributes


async def patch_bios(call: Call) -> Response:
    """PATCH ``Attributes`` ``NumLock`` (bool) and ``BootOrder`` ("Cd,Hdd,Pxe,Floppy" in
    any order) through the one settings path (the VM must be Off, as in Hyper-V)."""
    view = call.redfish.view(call.params["sid"])
    _check_etag(call, dev.bios(view, call.redfish.pending_bios.applied.get(view.id)))
    attributes = _bios_attributes(call)
    await call.redfish.core.update_vm(view.id, {"bios": dev.bios_patch(attributes)})
    return await bios(call)


# --- managers and chassis -------------------------------------------------------------

async def managers(call: Call) -> Response:
    return _ok(call, odata.collection("ManagerCollection", f"{R}/Managers", "Managers",
                                      [sys_.MANAGER_URI]))


async def manager(call: Call) -> Response:
    if call.params["mgr"] != sys_.MANAGER_ID:
        raise not_found("Manager", call.params["mgr"])
    return _ok(call, svc.manager(__version__, call.redfish.service_uuid,
                                 call.redfish.system_ids()))


async def chassis_collection(call: Call) -> Response:
    return _ok(call, odata.collection("ChassisCollection", f"{R}/Chassis", "Chassis",
                                      [sys_.CHASSIS_URI]))


async def chassis(call: Call) -> Response:
    if call.params["ch"] != sys_.CHASSIS_ID:
        raise not_found("Chassis", call.params["ch"])
    return _ok(call, svc.chassis(socket.gethostname(), call.redfish.system_ids()))


# --- sessions -------------------------------------------------------------------------

async def session_service(call: Call) -> Response:
    return _ok(call, svc.session_service())


def _mine_or_manager(call: Call, user: str) -> None:
    """Someone else's session or account needs ``access.manage``."""
    if user != call.user and not call.may("access.manage"):
        raise RedfishError(403, "InsufficientPrivilege",
                           detail=f"{call.user} may see and end only its own sessions and "
                                  "account (access.manage is needed); nothing was changed")


async def sessions(call: Call) -> Response:
    """Open sessions: all of them for a user manager, else the caller's own."""
    every = call.may("access.manage")
    ids = [s.id for s in call.redfish.auth.sessions() if every or s.user == call.user]
    return _ok(call, odata.collection("SessionCollection", svc.SESSIONS, "Sessions",
                                      [f"{svc.SESSIONS}/{i}" for i in ids]), "GET, HEAD, POST")


async def login(call: Call) -> Response:
    user, password = call.body.get("UserName"), call.body.get("Password")
    if not isinstance(user, str) or not isinstance(password, str):
        raise RedfishError(400, "CreateFailedMissingReqProperties",
                           "UserName" if not isinstance(user, str) else "Password")
    session_id, token = await call.redfish.auth.login(user, password, call.source)
    uri = f"{svc.SESSIONS}/{session_id}"
    return _ok(call, svc.session(session_id, user), status=201,
               headers={"X-Auth-Token": token, "Location": uri})


async def session(call: Call) -> Response:
    found = call.redfish.auth.session(call.params["sess"])
    _mine_or_manager(call, found.user)
    return _ok(call, svc.session(found.id, found.user), "GET, HEAD, DELETE")


async def logout(call: Call) -> Response:
    found = call.redfish.auth.session(call.params["sess"])
    _mine_or_manager(call, found.user)
    call.redfish.auth.end(found.id)
    return _no_content()


# --- accounts -------------------------------------------------------------------------

async def account_service(call: Call) -> Response:
    return _ok(call, svc.account_service())


async def accounts(call: Call) -> Response:
    """Every account for a user manager, else the caller's own."""
    every = call.may("access.manage")
    ids = [a.id for a in call.redfish.accounts.list() if every or a.user == call.user]
    return _ok(call, odata.collection("ManagerAccountCollection", svc.ACCOUNTS, "Accounts",
                                      [f"{svc.ACCOUNTS}/{i}" for i in ids]), "GET, HEAD, POST")


def _role(value: Any) -> Role:
    role = assignable(value)
    if role is None:
        raise not_in_list(value, "RoleId", ASSIGNABLE)
    return role


def _account_body(a: Any) -> dict[str, Any]:
    return svc.account(a.id, a.user, a.realm, a.role, a.locked)


async def create_account(call: Call) -> Response:
    """A local viridian user with ``RoleId`` (default ReadOnly) granted on the host."""
    body = call.body
    for required in ("UserName", "Password"):
        if not isinstance(body.get(required), str) or not body[required]:
            raise RedfishError(400, "CreateFailedMissingReqProperties", required)
    role = _role(body.get("RoleId", "ReadOnly"))
    created = call.redfish.accounts.create(body["UserName"], body["Password"], role)
    uri = f"{svc.ACCOUNTS}/{created.id}"
    return _ok(call, _account_body(created), status=201, headers={"Location": uri})


async def account(call: Call) -> Response:
    a = call.redfish.accounts.get(call.params["acc"])
    return _ok(call, _account_body(a), "GET, HEAD, PATCH, DELETE")


async def patch_account(call: Call) -> Response:
    """PATCH ``Password`` (own account: access.self) and ``RoleId`` (access.manage);
    ``Enabled`` may only stay true (viridian users are removed, not disabled)."""
    a = call.redfish.accounts.get(call.params["acc"])
    _check_etag(call, _account_body(a))
    body = {k: v for k, v in call.body.items() if not k.startswith("@odata")}
    unknown = sorted(set(body) - {"Password", "RoleId", "Enabled"})
    if unknown:
        raise RedfishError(400, "PropertyUnknown", unknown[0],
                           detail=f"unknown or read-only property {unknown[0]}; writable: "
                                  "Password, RoleId; nothing was changed")
    if not body:
        raise RedfishError(400, "NoOperation")
    if body.get("Enabled", True) is not True:
        raise RedfishError(400, "PropertyValueNotInList", body["Enabled"], "Enabled",
                           detail="viridian users cannot be disabled: delete the account or "
                                  "change its RoleId; allowed: true; nothing was changed")
    password = body.get("Password")
    if password is not None and not isinstance(password, str):
        raise RedfishError(400, "PropertyValueTypeError", str(password), "Password")
    role = _role(body["RoleId"]) if "RoleId" in body else None
    call.redfish.accounts.update(a.id, password, role)
    call.redfish.auth.forget_basic(a.user)
    a = call.redfish.accounts.get(a.id)
    return _ok(call, _account_body(a), "GET, HEAD, PATCH, DELETE")


async def delete_account(call: Call) -> Response:
    a = call.redfish.accounts.get(call.params["acc"])
    call.redfish.accounts.delete(a.id)
    call.redfish.auth.forget_basic(a.user)
    return _no_content()


async def roles(call: Call) -> Response:
    return _ok(call, odata.collection("RoleCollection", svc.ROLES, "Roles",
                                      [f"{svc.ROLES}/{r.value}" for r in Role]))


async def role(call: Call) -> Response:
    return _ok(call, svc.role(_role_or_404(call.params["role"])))


def _role_or_404(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise not_found("Role", value) from None


# --- tasks ----------------------------------------------------------------------------

async def task_service(call: Call) -> Response:
    return _ok(call, svc.task_service())


async def tasks(call: Call) -> Response:
    jobs = call.redfish.core.jobs.list()
    return _ok(call, odata.collection("TaskCollection", svc.TASKS, "Tasks",
                                      [f"{svc.TASKS}/{j['id']}" for j in jobs]))


def _job(call: Call) -> dict[str, Any]:
    try:
        return call.redfish.core.jobs.get(call.params["tid"])
    except Exception:
        raise not_found("Task", call.params["tid"]) from None


async def task(call: Call) -> Response:
    return _ok(call, svc.task(_job(call)))


async def task_monitor(call: Call) -> Response:
    """202 with the task while the job runs; its final Task (200) once it ended."""
    job = _job(call)
    if job["state"] in ("queued", "running"):
        body = svc.task(job)
        return _ok(call, body, status=202, headers={"Location": body["TaskMonitor"]})
    return _ok(call, svc.task(job))


# --- events ---------------------------------------------------------------------------

async def event_service(call: Call) -> Response:
    return _ok(call, svc.event_service())


async def subscriptions(call: Call) -> Response:
    ids = [sub.id for sub in call.redfish.events.subscriptions.all()]
    return _ok(call, odata.collection("EventDestinationCollection", svc.SUBSCRIPTIONS,
                                      "Subscriptions",
                                      [f"{svc.SUBSCRIPTIONS}/{i}" for i in ids]),
               "GET, HEAD, POST")


async def subscribe(call: Call) -> Response:
    destination = call.body.get("Destination")
    if not isinstance(destination, str) or not destination.startswith(("http://", "https://")):
        raise RedfishError(400, "CreateFailedMissingReqProperties", "Destination",
                           detail="Destination must be an http:// or https:// URI; nothing "
                                  "was changed")
    protocol = call.body.get("Protocol", "Redfish")
    if protocol != "Redfish":
        raise not_in_list(protocol, "Protocol", ["Redfish"])
    sub = call.redfish.events.subscribe(destination, str(call.body.get("Context", "")))
    uri = f"{svc.SUBSCRIPTIONS}/{sub.id}"
    return _ok(call, svc.subscription(sub.id, sub.destination, sub.context), status=201,
               headers={"Location": uri})


def _subscription(call: Call) -> Any:
    sub = call.redfish.events.subscriptions.get(call.params["sub"])
    if sub is None:
        raise not_found("EventDestination", call.params["sub"])
    return sub


async def subscription(call: Call) -> Response:
    sub = _subscription(call)
    return _ok(call, svc.subscription(sub.id, sub.destination, sub.context),
               "GET, HEAD, DELETE")


async def unsubscribe(call: Call) -> Response:
    sub = _subscription(call)
    call.redfish.events.subscriptions.remove(sub.id)
    return _no_content()


async def sse(call: Call) -> Response:
    return StreamingResponse(call.redfish.events.stream(), media_type="text/event-stream",
                             headers={"OData-Version": "4.0", "Cache-Control": "no-cache"})


async def test_event(call: Call) -> Response:
    record = svc.power_record("test", f"{R}/EventService", "On", "Test",
                              call.body.get("EventTimestamp") or "2026-01-01T00:00:00Z")
    asyncio.get_running_loop().create_task(call.redfish.events.publish([record]))
    return _no_content()


S = f"{R}/Systems/{{sid}}"
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/redfish", redfish_version), ("GET", R, root),
    ("GET", f"{R}/$metadata", metadata), ("GET", f"{R}/odata", odata_document),
    ("GET", f"{R}/Systems", systems), ("POST", f"{R}/Systems", create_system),
    ("GET", sys_.CAPABILITIES_URI, system_capabilities),
    ("GET", S, system), ("PATCH", S, patch_system),
    ("GET", f"{S}/ResetActionInfo", reset_info),
    ("POST", f"{S}/Actions/ComputerSystem.Reset", reset),
    ("GET", f"{S}/Processors", processors), ("GET", f"{S}/Processors/{{pid}}", processor),
    ("GET", f"{S}/Memory", memory_collection), ("GET", f"{S}/Memory/{{mid}}", memory),
    ("GET", f"{S}/EthernetInterfaces", nics), ("GET", f"{S}/EthernetInterfaces/{{nid}}", nic),
    ("GET", f"{S}/Storage", storages), ("GET", f"{S}/Storage/{{st}}", storage),
    ("GET", f"{S}/Storage/{{st}}/Drives/{{did}}", drive),
    ("GET", f"{S}/Storage/{{st}}/Volumes", volumes),
    ("GET", f"{S}/Storage/{{st}}/Volumes/{{did}}", volume),
    ("GET", f"{S}/VirtualMedia", media_collection),
    ("GET", f"{S}/VirtualMedia/{{vmid}}", media),
    ("POST", f"{S}/VirtualMedia/{{vmid}}/Actions/VirtualMedia.InsertMedia", insert_media),
    ("POST", f"{S}/VirtualMedia/{{vmid}}/Actions/VirtualMedia.EjectMedia", eject_media),
    ("GET", f"{S}/Bios", bios), ("PATCH", f"{S}/Bios", patch_bios),
    ("GET", f"{S}/Bios/Settings", bios_settings),
    ("PATCH", f"{S}/Bios/Settings", patch_bios_settings),
    ("GET", f"{R}/Managers", managers), ("GET", f"{R}/Managers/{{mgr}}", manager),
    ("GET", f"{R}/Chassis", chassis_collection), ("GET", f"{R}/Chassis/{{ch}}", chassis),
    ("GET", f"{R}/SessionService", session_service),
    ("GET", svc.SESSIONS, sessions), ("POST", svc.SESSIONS, login),
    ("GET", f"{svc.SESSIONS}/{{sess}}", session),
    ("DELETE", f"{svc.SESSIONS}/{{sess}}", logout),
    ("GET", f"{R}/AccountService", account_service),
    ("GET", svc.ACCOUNTS, accounts), ("POST", svc.ACCOUNTS, create_account),
    ("GET", f"{svc.ACCOUNTS}/{{acc}}", account),
    ("PATCH", f"{svc.ACCOUNTS}/{{acc}}", patch_account),
    ("DELETE", f"{svc.ACCOUNTS}/{{acc}}", delete_account),
    ("GET", svc.ROLES, roles), ("GET", f"{svc.ROLES}/{{role}}", role),
    ("GET", f"{R}/TaskService", task_service), ("GET", svc.TASKS, tasks),
    ("GET", f"{svc.TASKS}/{{tid}}", task), ("GET", f"{svc.MONITORS}/{{tid}}", task_monitor),
    ("GET", f"{R}/EventService", event_service),
    ("GET", svc.SUBSCRIPTIONS, subscriptions), ("POST", svc.SUBSCRIPTIONS, subscribe),
    ("GET", f"{svc.SUBSCRIPTIONS}/{{sub}}", subscription),
    ("DELETE", f"{svc.SUBSCRIPTIONS}/{{sub}}", unsubscribe),
    ("GET", svc.SSE_URI, sse),
    ("POST", f"{R}/EventService/Actions/EventService.SubmitTestEvent", test_event),
]
