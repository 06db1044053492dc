"""The service's own resources: the Manager (the viridian service), the host Chassis,
SessionService, AccountService with roles, TaskService (jobs as tasks) and EventService."""

from __future__ import annotations

from typing import Any

from viridian.redfish import REDFISH_ROOT
from viridian.redfish.odata import Resource, link, resource
from viridian.redfish.privileges import ROLE_PRIVILEGES, VIRIDIAN_ROLE, Role
from viridian.redfish.systems import CHASSIS_ID, CHASSIS_URI, MANAGER_ID, MANAGER_URI, SYSTEMS

OK = {"State": "Enabled", "Health": "OK"}
SESSIONS = f"{REDFISH_ROOT}/SessionService/Sessions"
ACCOUNTS = f"{REDFISH_ROOT}/AccountService/Accounts"
ROLES = f"{REDFISH_ROOT}/AccountService/Roles"
TASKS = f"{REDFISH_ROOT}/TaskService/Tasks"
MONITORS = f"{REDFISH_ROOT}/TaskService/TaskMonitors"
SUBSCRIPTIONS = f"{REDFISH_ROOT}/EventService/Subscriptions"
SSE_URI = f"{REDFISH_ROOT}/EventService/SSE"
SESSION_TIMEOUT_S = 8 * 3600  # viridian.access.control.SESSION_S (from login, not idle)
LOCKOUT = (5, 300, 300)  # viridian.access.lockout: failures, duration s, counter reset s
EVENT_TYPES = ["ResourceEvent"]


def manager(version: str, uuid: str, system_ids: list[str]) -> Resource:
    """The viridian service as a ``Manager`` of type ``Service`` for every VM."""
    return resource("Manager", MANAGER_URI, MANAGER_ID, "viridian service",
                    ManagerType="Service", FirmwareVersion=version, UUID=uuid,
                    ServiceEntryPointUUID=uuid, Status=OK,
                    Links={"ManagerForServers": [link(f"{SYSTEMS}/{i}") for i in system_ids],
                           "ManagerForChassis": [link(CHASSIS_URI)]})


def chassis(hostname: str, system_ids: list[str]) -> Resource:
    """The host machine, holding every VM."""
    return resource("Chassis", CHASSIS_URI, CHASSIS_ID, hostname, ChassisType="StandAlone",
                    Status=OK,
                    Links={"ComputerSystems": [link(f"{SYSTEMS}/{i}") for i in system_ids],
                           "ManagedBy": [link(MANAGER_URI)]})


def session_service() -> Resource:
    return resource("SessionService", f"{REDFISH_ROOT}/SessionService", "SessionService",
                    "Session service", ServiceEnabled=True,
                    SessionTimeout=SESSION_TIMEOUT_S, Sessions=link(SESSIONS), Status=OK)


def session(session_id: str, user: str) -> Resource:
    return resource("Session", f"{SESSIONS}/{session_id}", session_id, f"Session of {user}",
                    UserName=user, SessionType="Redfish")


def account_service() -> Resource:
    threshold, duration, reset = LOCKOUT
    return resource("AccountService", f"{REDFISH_ROOT}/AccountService", "AccountService",
                    "Account service: viridian's users", ServiceEnabled=True,
                    MinPasswordLength=8, MaxPasswordLength=128,
                    AccountLockoutThreshold=threshold, AccountLockoutDuration=duration,
                    AccountLockoutCounterResetAfter=reset, LocalAccountAuth="Enabled",
                    Accounts=link(ACCOUNTS), Roles=link(ROLES), Status=OK)


def account(account_id: str, user: str, realm: str, role: Role, locked: bool) -> Resource:
    """A viridian user as a ``ManagerAccount`` (``Description`` names its realm)."""
    return resource("ManagerAccount", f"{ACCOUNTS}/{account_id}", account_id,
                    f"Account {user}", Description=f"viridian user of the {realm} realm",
                    UserName=user, RoleId=role.value, Enabled=True, Locked=locked,
                    AccountTypes=["Redfish"], Password=None,
                    Links={"Role": link(f"{ROLES}/{role.value}")})


def role(r: Role) -> Resource:
    """A Redfish role and the viridian role it is a host-wide grant of."""
    if r is Role.DELEGATED:
        what = ("no host-wide Redfish role: what the account may do comes from its viridian "
                "grants on single VMs or tags, or custom roles (viridian grant list)")
    else:
        what = f"a grant of viridian's {VIRIDIAN_ROLE[r]} role on the host"
    return resource("Role", f"{ROLES}/{r.value}", r.value, f"{r.value} role",
                    Description=what, RoleId=r.value, IsPredefined=r is not Role.DELEGATED,
                    AssignedPrivileges=list(ROLE_PRIVILEGES[r]))


def task_service() -> Resource:
    return resource("TaskService", f"{REDFISH_ROOT}/TaskService", "TaskService",
                    "Task service", ServiceEnabled=True, CompletedTaskOverWritePolicy="Oldest",
                    LifeCycleEventOnTaskStateChange=False, Tasks=link(TASKS), Status=OK)


_TASK_STATE = {"queued": "Pending", "running": "Running", "completed": "Completed",
               "failed": "Exception", "cancelled": "Cancelled"}
_TASK_STATUS = {"failed": "Critical", "cancelled": "Warning"}


def task(job: dict[str, Any]) -> Resource:
    """A viridian job as a ``Task`` (its monitor answers 202 until the job ends)."""
    extra: Resource = {"EndTime": job["finished_at"]} if job["finished_at"] else {}
    return resource(
        "Task", f"{TASKS}/{job['id']}", job["id"],
        f"{job['kind']} {job['vm'] or 'host'}", TaskState=_TASK_STATE[job["state"]],
        TaskStatus=_TASK_STATUS.get(job["state"], "OK"),
        StartTime=job["started_at"] or job["created_at"], PercentComplete=job["progress"],
        TaskMonitor=f"{MONITORS}/{job['id']}",
        Messages=[{"MessageId": "TaskEvent.1.0.TaskStarted", "Message": job["message"],
                   "MessageArgs": [job["id"]], "MessageSeverity": "OK"}],
        **extra)


def event_service() -> Resource:
    uri = f"{REDFISH_ROOT}/EventService"
    return resource("EventService", uri, "EventService", "Event service",
                    ServiceEnabled=True, DeliveryRetryAttempts=3,
                    DeliveryRetryIntervalSeconds=5, EventFormatTypes=["Event"],
                    RegistryPrefixes=EVENT_TYPES, ResourceTypes=["ComputerSystem"],
                    ServerSentEventUri=SSE_URI, Subscriptions=link(SUBSCRIPTIONS),
                    Status=OK,
                    Actions={"#EventService.SubmitTestEvent": {
                        "target": f"{uri}/Actions/EventService.SubmitTestEvent"}})


def subscription(sub_id: str, destination: str, context: str) -> Resource:
    return resource("EventDestination", f"{SUBSCRIPTIONS}/{sub_id}", sub_id,
                    "Event subscription", Destination=destination, Context=context,
                    Protocol="Redfish", SubscriptionType="RedfishEvent",
                    EventFormatType="Event", Status=OK)


def event(event_id: str, records: list[Resource]) -> Resource:
    return {"@odata.type": "#Event.v1_13_0.Event", "Id": event_id, "Name": "viridian events",
            "Events": records}


def power_record(record_id: str, system_uri: str, power_state: str, vm_state: str,
                 at: str) -> Resource:
    """One ``EventRecord``: a VM's power state changed (ResourceEvent registry's
    ``ResourceChanged``; ``MessageArgs`` carry the new power state and VM state)."""
    return {"EventId": record_id, "EventTimestamp": at, "EventType": "Other",
            "MessageId": "ResourceEvent.1.4.ResourceChanged",
            "Message": f"The resource {system_uri} changed: PowerState {power_state} "
                       f"({vm_state}).",
            "MessageArgs": [power_state, vm_state], "MessageSeverity": "OK",
            "OriginOfCondition": link(system_uri), "MemberId": record_id}
