"""THE table: every route of the service (method + path template) → the one operation it
needs (docs/api.md, "Access"). The service's access gate (:mod:`viridian.service.auth`)
looks every request up here; a route missing from the table is refused to everyone but
the bootstrap admin token, and ``tests/access/test_route_table.py`` fails for it. The
OpenAPI document shows each route's operation as ``x-viridian-operation``.

``WS`` stands for a WebSocket route. ``vm.<action>`` is resolved per ``{action}`` through
:data:`ACTION_OPERATIONS`. :data:`PUBLIC` routes need no credentials at all.

Not in the table: Redfish and the cluster peer routes ``/api/v1/cluster/peer/...``
(migrations into this host, forwarded provisioning), which are outside the gate and take
the cluster peer token only; forwarded provisioning authorizes the user it names in this
host's access data with ``template.deploy``, as ``POST /provision`` does
(``service.library.peer_routes``).
"""

from __future__ import annotations

from collections.abc import Mapping

from viridian.access.operations import SELF

__all__ = ["ACTION_OPERATIONS", "FILTERED_LISTS", "JOB_ROUTES", "OWN_JOBS_LIST", "PUBLIC",
           "ROUTE_AUTHORIZED", "ROUTE_OPERATIONS", "operation_for"]

A = "/api/v1"
V = f"{A}/vms/{{ref}}"
ACTION = "vm.<action>"

ACTION_OPERATIONS = {"start": "vm.start", "resume": "vm.start", "stop": "vm.stop",
                     "shutdown": "vm.stop", "save": "vm.stop", "pause": "vm.stop",
                     "reset": "vm.stop"}

PUBLIC = frozenset({("POST", f"{A}/access/login")})
"""Routes anyone may call: logging in (rate limited, audited)."""

FILTERED_LISTS = frozenset({("GET", f"{A}/vms")})
"""Lists answered to anyone with the operation somewhere, holding only the VMs whose
``vm.read`` the caller has (a user without host-wide read sees its own and granted VMs)."""

ROUTE_AUTHORIZED = frozenset({("GET", f"{A}/templates"), ("GET", f"{A}/templates/{{name}}"),
                              ("POST", f"{A}/provision")})
"""Routes whose target is a template named in the path or body (self-service): the gate
refuses a caller without the operation on any scope; the route checks it on
``template:NAME`` (``service.library.selfservice``) and lists only the templates the
caller may read."""

JOB_ROUTES = frozenset({("GET", f"{A}/jobs/{{job_id}}"), ("POST", f"{A}/jobs/{{job_id}}/cancel")})
"""Routes whose target is the job ``{job_id}``: its operation is needed on the host, or the
caller is the job's submitter (``viridian.access.policy.SUBMITTER_OPERATIONS``); the
OpenAPI document says so as ``x-viridian-or``."""

OWN_JOBS_LIST = ("GET", f"{A}/jobs")
"""The job list: its operation (``host.read``) shows every job; anyone else gets the jobs
they submitted (you always see your own jobs); the OpenAPI document says so as
``x-viridian-or``."""

ROUTE_OPERATIONS: dict[tuple[str, str], str] = {
    # host, jobs, counters, analyzer, events
    ("GET", f"{A}/host"): "host.read",
    ("POST", f"{A}/host/shutdown"): "host.manage",
    ("GET", f"{A}/jobs"): "host.read",  # or only the caller's own jobs
    ("GET", f"{A}/jobs/{{job_id}}"): "job.read",  # or the job's submitter
    ("POST", f"{A}/jobs/{{job_id}}/cancel"): "job.cancel",  # or the job's submitter
    ("GET", f"{A}/counters"): "host.read",
    ("POST", f"{A}/counters/sample"): "host.manage",
    ("GET", f"{A}/counters/history"): "host.read",
    ("GET", "/metrics"): "host.read",
    ("GET", f"{A}/bpa"): "host.read",
    ("GET", f"{A}/events"): SELF,  # filtered: VMs the caller may read (console.events)
    # backup (issue 16): points in folder targets, verify, restore
    ("GET", f"{A}/backups"): "backup.read",
    ("POST", f"{A}/backups"): "backup.manage",
    ("GET", f"{A}/backups/{{backup_id}}"): "backup.read",
    ("DELETE", f"{A}/backups/{{backup_id}}"): "backup.manage",
    ("POST", f"{A}/backups/{{backup_id}}/verify"): "backup.read",
    ("POST", f"{A}/backups/{{backup_id}}/restore"): "vm.create",
    ("GET", f"{A}/backups/schedules"): "backup.read",
    ("PUT", f"{A}/backups/schedules/{{ref}}"): "backup.manage",
    ("DELETE", f"{A}/backups/schedules/{{ref}}"): "backup.manage",
    # VMs
    ("GET", f"{A}/vms"): "vm.read",
    ("POST", f"{A}/vms"): "vm.create",
    ("POST", f"{A}/vms/import"): "vm.create",
    ("POST", f"{A}/imports"): "vm.create",
    ("POST", f"{A}/imports/libvirt"): "host.manage",  # V2V: the host's libvirt
    ("POST", f"{V}/export"): "vm.read",
    ("GET", V): "vm.read",
    ("PATCH", V): "vm.configure",
    ("DELETE", V): "vm.delete",
    ("POST", f"{V}/rename"): "vm.configure",
    ("POST", f"{V}/move"): "host.manage",
    ("POST", f"{V}/move-storage"): "host.manage",
    ("GET", f"{A}/migrations/incoming"): "host.manage",
    ("POST", f"{A}/migrations/incoming"): "host.manage",
    ("POST", f"{A}/migrations/incoming/{{incoming_id}}/commit"): "host.manage",
    ("DELETE", f"{A}/migrations/incoming/{{incoming_id}}"): "host.manage",
    ("POST", f"{V}/delete-saved-state"): "vm.stop",
    ("POST", f"{V}/{{action}}"): ACTION,
    ("PUT", f"{V}/tags"): "vm.configure",
    ("PUT", f"{V}/owner"): "access.manage",
    ("GET", f"{V}/measure"): "vm.read",
    ("POST", f"{V}/measure/reset"): "vm.configure",
    # devices, screen, consoles
    ("POST", f"{V}/disks"): "vm.configure",
    ("DELETE", f"{V}/disks/{{controller}}/{{location}}"): "vm.configure",
    ("PUT", f"{V}/dvd"): "vm.configure",
    ("PUT", f"{V}/floppy"): "vm.configure",
    ("POST", f"{V}/scsi"): "vm.configure",
    ("DELETE", f"{V}/scsi"): "vm.configure",
    ("POST", f"{V}/nics"): "vm.configure",
    ("PATCH", f"{V}/nics/{{index}}"): "vm.configure",
    ("DELETE", f"{V}/nics/{{index}}"): "vm.configure",
    ("PUT", f"{V}/com/{{port}}"): "vm.configure",
    ("GET", f"{V}/screenshot"): "vm.connect",
    ("WS", f"{V}/console"): "vm.connect",
    ("WS", f"{V}/vnc"): "vm.connect",
    # checkpoints
    ("GET", f"{V}/checkpoints"): "vm.read",
    ("POST", f"{V}/checkpoints"): "vm.checkpoint",
    ("POST", f"{V}/checkpoints/{{cp}}/apply"): "vm.checkpoint",
    ("PATCH", f"{V}/checkpoints/{{cp}}"): "vm.checkpoint",
    ("DELETE", f"{V}/checkpoints/{{cp}}"): "vm.checkpoint",
    # integration services, backup
    ("GET", f"{V}/integration"): "vm.read",
    ("PATCH", f"{V}/integration"): "vm.configure",
    ("POST", f"{V}/integration/exec"): "vm.guest",
    ("POST", f"{V}/integration/files"): "vm.guest",
    ("PUT", f"{V}/integration/kvp"): "vm.guest",
    ("GET", f"{V}/integration/backup"): "backup.read",
    ("POST", f"{V}/integration/backup/freeze"): "backup.manage",
    ("POST", f"{V}/integration/backup/thaw"): "backup.manage",
    # switches and network
    ("GET", f"{A}/switches"): "switch.read",
    ("POST", f"{A}/switches"): "switch.manage",
    ("GET", f"{A}/switches/{{name}}"): "switch.read",
    ("DELETE", f"{A}/switches/{{name}}"): "switch.manage",
    ("GET", f"{A}/network"): "switch.read",
    ("POST", f"{A}/network/reconcile"): "switch.manage",
    # library, templates, provisioning
    ("GET", f"{A}/library"): "library.read",
    ("POST", f"{A}/library"): "library.manage",
    ("GET", f"{A}/library/uploads/{{upload_id}}"): "library.manage",
    ("PATCH", f"{A}/library/uploads/{{upload_id}}"): "library.manage",
    ("DELETE", f"{A}/library/uploads/{{upload_id}}"): "library.manage",
    ("GET", f"{A}/library/{{name}}"): "library.read",
    ("DELETE", f"{A}/library/{{name}}"): "library.manage",
    ("POST", f"{A}/library/{{name}}/uploads"): "library.manage",
    ("GET", f"{A}/library/{{name}}/items/{{item}}"): "library.read",
    ("GET", f"{A}/library/{{name}}/content/{{item}}"): "library.read",
    ("GET", f"{A}/templates"): "library.read",
    ("POST", f"{A}/templates"): "library.manage",
    ("GET", f"{A}/templates/{{name}}"): "library.read",
    ("DELETE", f"{A}/templates/{{name}}"): "library.manage",
    ("POST", f"{A}/provision"): "template.deploy",  # on the body's template:NAME
    # host groups (issue 18): the tree of hosts placement, grants and provisioning use
    ("GET", f"{A}/hostgroups"): "host.read",
    ("POST", f"{A}/hostgroups"): "host.manage",
    ("PUT", f"{A}/hostgroups/hosts/{{host}}"): "host.manage",
    ("GET", f"{A}/hostgroups/quotas/{{user}}"): "access.manage",
    ("PUT", f"{A}/hostgroups/quotas/{{user}}"): "access.manage",
    ("GET", f"{A}/hostgroups/{{path}}"): "host.read",
    ("DELETE", f"{A}/hostgroups/{{path}}"): "host.manage",
    # disk wizard
    **{("POST", f"{A}/disks/{verb}"): "disk.manage" for verb in (
        "inspect", "new", "convert", "compact", "expand", "merge", "uses", "check")},
    # failover cluster (issue 15)
    ("GET", f"{A}/cluster"): "cluster.read",
    ("POST", f"{A}/cluster"): "cluster.manage",
    ("POST", f"{A}/cluster/join"): "cluster.manage",
    ("POST", f"{A}/cluster/leave"): "cluster.manage",
    ("POST", f"{A}/cluster/validate"): "cluster.read",
    ("POST", f"{A}/cluster/hosts/{{host}}/drain"): "cluster.manage",
    ("POST", f"{A}/cluster/hosts/{{host}}/resume"): "cluster.manage",
    # access
    ("POST", f"{A}/access/login"): SELF,
    ("POST", f"{A}/access/logout"): SELF,
    ("GET", f"{A}/access/whoami"): SELF,
    ("GET", f"{A}/access/allowed"): SELF,
    ("GET", f"{A}/access/users"): "access.manage",
    ("POST", f"{A}/access/users"): "access.manage",
    ("GET", f"{A}/access/users/{{user}}"): "access.manage",
    ("DELETE", f"{A}/access/users/{{user}}"): "access.manage",
    ("PUT", f"{A}/access/users/{{user}}/password"): "access.manage",
    ("POST", f"{A}/access/users/{{user}}/totp"): "access.manage",
    ("GET", f"{A}/access/groups"): "access.manage",
    ("PUT", f"{A}/access/groups/{{group}}/members/{{user}}"): "access.manage",
    ("DELETE", f"{A}/access/groups/{{group}}/members/{{user}}"): "access.manage",
    ("GET", f"{A}/access/realms"): "access.manage",
    ("GET", f"{A}/access/storage-paths"): "access.manage",
    ("POST", f"{A}/access/storage-paths"): "access.manage",
    ("DELETE", f"{A}/access/storage-paths"): "access.manage",
    ("POST", f"{A}/access/realms"): "access.manage",
    ("DELETE", f"{A}/access/realms/{{realm}}"): "access.manage",
    ("GET", f"{A}/access/roles"): SELF,
    ("POST", f"{A}/access/roles"): "access.manage",
    ("GET", f"{A}/access/roles/{{role}}"): SELF,
    ("DELETE", f"{A}/access/roles/{{role}}"): "access.manage",
    ("GET", f"{A}/access/grants"): "access.manage",
    ("POST", f"{A}/access/grants"): "access.manage",
    ("DELETE", f"{A}/access/grants"): "access.manage",
    ("GET", f"{A}/access/tokens"): SELF,
    ("POST", f"{A}/access/tokens"): SELF,
    ("DELETE", f"{A}/access/tokens/{{token_id}}"): SELF,
    ("PUT", f"{A}/access/quotas/{{user}}"): "access.manage",
    ("GET", f"{A}/access/quotas/{{user}}"): "access.manage",
    ("GET", f"{A}/access/audit"): "access.manage",
    ("GET", f"{A}/access/audit/verify"): "access.manage",
    # the console's pages and files, the API's own description
    ("GET", "/"): SELF,
    ("GET", "/index.html"): SELF,
    ("GET", "/connect.html"): SELF,
    ("GET", "/admin.html"): SELF,  # the page; its data needs access.manage
    ("GET", "/selfservice.html"): SELF,  # the page; its data: templates granted, own VMs
    ("GET", "/static"): SELF,
    ("GET", "/openapi.json"): SELF,
}


def operation_for(method: str, template: str, params: Mapping[str, object],
                  table: Mapping[tuple[str, str], str] = ROUTE_OPERATIONS) -> str | None:
    """The operation a request needs (HEAD as GET), or None when the route is not in the table."""
    method = "GET" if method == "HEAD" else method
    operation = table.get((method, template))
    if operation == ACTION:
        return ACTION_OPERATIONS.get(str(params.get("action", "")))
    return operation
