"""A small in-memory fake of the service API (docs/api.md) for the CLI's unit tests.

A real HTTP server on 127.0.0.1 (free port, own thread) that checks the bearer token,
keeps a few VMs in memory and runs jobs *by polls*, not by time: every ``GET /jobs/{id}``
advances a job one step (queued → running 30% → running 70% → completed), so tests of
progress and waiting are deterministic. Every request is recorded for assertions.
Errors are built from :mod:`viridian.errors`, exactly as the service builds them.
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from viridian.config import API_PREFIX
from viridian.errors import (
    BadRequest,
    Conflict,
    InvalidSetting,
    InvalidTransition,
    NotFound,
    Unauthorized,
    ViridianError,
)

ENABLED_STATE = {"Running": 2, "Off": 3, "Stopping": 4, "Saved": 6, "Paused": 9, "Starting": 10}
TRANSITIONS: dict[str, tuple[frozenset[str], str, str]] = {
    # action: (states it is allowed in, state while the job runs, state after it)
    "start": (frozenset({"Off", "Saved"}), "Starting", "Running"),
    "stop": (frozenset({"Running", "Paused"}), "Stopping", "Off"),
    "shutdown": (frozenset({"Running"}), "Stopping", "Off"),
    "save": (frozenset({"Running", "Paused"}), "Saving", "Saved"),
    "pause": (frozenset({"Running"}), "Pausing", "Paused"),
    "resume": (frozenset({"Paused"}), "Resuming", "Running"),
    "reset": (frozenset({"Running"}), "Resetting", "Running"),
}
AUTO_STOP_RESULT = {"save": "Saved", "turn_off": "Off", "shut_down": "Off"}
JOB_STEPS = (("running", 30, "preparing"), ("running", 70, "working"))
RUNNING_UPTIME_S = 3723.5  # shows as 1:02:03
PNG = b"\x89PNG\r\n\x1a\n fake screen"


def default_settings(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "notes": "",
        "bios": {"num_lock": True, "startup_order": ["cd", "ide", "net", "floppy"]},
        "memory": {"startup_mb": 512},
        "processor": {
            "count": 1,
            "reserve_pct": 0,
            "limit_pct": 100,
            "weight": 100,
            "compatibility_mode": False,
        },
        "ide": [],
        "scsi": [],
        "network_adapters": [],
        "com1": {"kind": "none", "path": None},
        "com2": {"kind": "none", "path": None},
        "floppy": {"path": None},
        "automatic_start": {"action": "if_running", "delay_s": 0},
        "automatic_stop": {"action": "save"},
    }


def host_info() -> dict[str, Any]:
    return {
        "hostname": "fakehost",
        "version": "0.1.0",
        "accelerator": "tcg",
        "qemu_version": "7.2.0",
        "logical_processors": 2,
        "memory_mb": 24000,
        "memory_available_mb": 20000,
        "host_reserve_mb": 512,
        "memory_assigned_mb": 1024,
        "vms_total": 2,
        "vms_running": 1,
        "virtual_processors_running": 1,
        "virtual_processor_ratio": 8,
        "data_dir": "/var/lib/viridian",
        "boot_id": "0f3c1d2e-boot",
        "uptime_s": 86461.0,
    }


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeJob:
    data: dict[str, Any]
    finish: Callable[[], None]
    undo: Callable[[], None]
    steps: list[tuple[str, int, str]] = field(default_factory=lambda: list(JOB_STEPS))


class FakeService:
    """The fake. ``fail_jobs[vm_name] = error dict`` makes that VM's next job fail;
    ``broken = True`` makes every request answer 500 internal_error."""

    def __init__(self, token: str = "fake-token-123") -> None:
        self.token = token
        self.vms: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.requests: list[Recorded] = []
        self.fail_jobs: dict[str, dict[str, Any]] = {}
        self.broken = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def record_as_local_service(self, data_dir: Path) -> None:
        """Make ``data_dir`` look like this fake's data folder: its token and the address
        record (``service.json``) that `viridian serve` writes at start."""
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "token").write_text(self.token + "\n")
        port = self._server.server_address[1]
        record = {"host": "127.0.0.1", "port": port, "pid": os.getpid()}
        (data_dir / "service.json").write_text(json.dumps(record))

    # -- state helpers for tests ------------------------------------------------------

    def add_vm(self, name: str, state: str = "Off", **settings: Any) -> dict[str, Any]:
        """Define a VM directly; ``settings`` are merged into its default settings."""
        vm = {
            "id": str(uuid.uuid4()),
            "name": name,
            "state": state,
            "enabled_state": ENABLED_STATE.get(state, 3),
            "memory_mb": 512,
            "processors": 1,
            "uptime_s": 0.0,
            "status": None,
            "pid": None,
            "folder": f"/var/lib/viridian/vms/{name}",
            "created_at": "2024-01-01T00:00:00+00:00",
            "settings": _merged(default_settings(name), settings),
        }
        self.vms[name] = vm
        self._set_state(vm, state)
        return vm

    def requests_to(self, method: str, prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    # -- request handling --------------------------------------------------------------

    def handle(self, method: str, url: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = urlsplit(url)
        path = parts.path.removeprefix(API_PREFIX)
        query = parse_qs(parts.query)
        with self._lock:
            self.requests.append(Recorded(method, path, query, body, headers))
            try:
                return self._route(method, path, query, headers, body)
            except ViridianError as err:
                return err.http_status, {"error": err.to_dict()}

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: Any,
    ) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {self.token}":
            raise Unauthorized("missing or wrong token")
        if self.broken:
            return 500, {"error": {"code": "internal_error", "message": "boom", "details": {}}}
        for route_method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and route_method == method:
                args = [unquote(group) for group in match.groups()]
                return handler(*args, query=query, body=body)
        raise NotFound(f"no route {method} {path}")

    def _routes(self) -> list[tuple[str, str, Callable[..., tuple[int, Any]]]]:
        return [
            ("GET", r"/host", lambda **_: (200, host_info())),
            ("POST", r"/host/shutdown", self._host_shutdown),
            ("GET", r"/vms", lambda **_: (200, {"vms": list(self.vms.values())})),
            ("POST", r"/vms", self._new_vm),
            ("GET", r"/vms/([^/]+)", lambda ref, **_: (200, self._vm(ref))),
            ("PATCH", r"/vms/([^/]+)", self._patch_vm),
            ("DELETE", r"/vms/([^/]+)", self._remove_vm),
            ("POST", r"/vms/([^/]+)/([a-z]+)", self._action),
            ("GET", r"/vms/([^/]+)/screenshot", self._screenshot),
            ("DELETE", r"/vms/([^/]+)/nics/(\d+)", self._remove_nic),
            ("GET", r"/jobs", lambda **_: (200, {"jobs": [j.data for j in self.jobs.values()]})),
            ("GET", r"/jobs/([^/]+)", self._job),
            ("POST", r"/jobs/([^/]+)/cancel", self._cancel_job),
        ]

    def _vm(self, ref: str) -> dict[str, Any]:
        for vm in self.vms.values():
            if ref in (vm["name"], vm["id"]):
                return vm
        raise NotFound(f"no VM named or with id {ref!r}", ref=ref)

    def _new_vm(self, body: Any, **_: Any) -> tuple[int, Any]:
        name = body["name"]
        if name in self.vms:
            raise Conflict(f"a VM named {name!r} already exists; nothing was changed")
        _check_memory(body.get("memory_mb", 512))
        ide = [_drive(body, "vhd", 0, "hard_disk"), _drive(body, "dvd", 1, "dvd")]
        vm = self.add_vm(name, ide=[d for d in ide if d])
        vm["memory_mb"] = vm["settings"]["memory"]["startup_mb"] = body.get("memory_mb", 512)
        vm["processors"] = vm["settings"]["processor"]["count"] = body.get("processors", 1)
        return 201, vm

    def _patch_vm(self, ref: str, body: Any, **_: Any) -> tuple[int, Any]:
        vm = self._vm(ref)
        unknown = set(body) - set(vm["settings"])
        if unknown:
            raise BadRequest(f"unknown settings: {sorted(unknown)}")
        new_name = body.get("name", vm["name"])
        if new_name != vm["name"]:
            if new_name in self.vms:
                raise Conflict(f"a VM named {new_name!r} already exists; nothing was changed")
            self.vms[new_name] = self.vms.pop(vm["name"])
            vm["name"] = new_name
        _check_memory(body.get("memory", {}).get("startup_mb", 512))
        vm["settings"] = _merged(vm["settings"], body)
        vm["memory_mb"] = vm["settings"]["memory"]["startup_mb"]
        vm["processors"] = vm["settings"]["processor"]["count"]
        return 200, vm

    def _remove_vm(self, ref: str, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        vm = self._vm(ref)
        if vm["state"] != "Off":
            raise Conflict(f"VM {vm['name']!r} is {vm['state']}; turn it off first")
        del self.vms[vm["name"]]
        delete = query.get("delete_files") == ["true"]
        return 200, {"removed": vm["name"], "deleted_files": delete}

    def _action(self, ref: str, action: str, body: Any, **_: Any) -> tuple[int, Any]:
        vm = self._vm(ref)
        allowed_in, during, after = TRANSITIONS[action]
        if vm["state"] not in allowed_in:
            allowed = [a for a, (states, _, _) in TRANSITIONS.items() if vm["state"] in states]
            raise InvalidTransition(vm["name"], action, vm["state"], allowed)
        before = vm["state"]
        self._set_state(vm, during)
        job = self._new_job(
            action, vm, lambda: self._set_state(vm, after), lambda: self._set_state(vm, before)
        )
        job.data["result"] = {"request_body": body}
        return 202, job.data

    def _host_shutdown(self, **_: Any) -> tuple[int, Any]:
        def finish() -> None:
            for vm in self.vms.values():
                if vm["state"] in ("Running", "Paused"):
                    action = vm["settings"]["automatic_stop"]["action"]
                    self._set_state(vm, AUTO_STOP_RESULT[action])

        return 202, self._new_job("host_shutdown", None, finish, lambda: None).data

    def _new_job(
        self,
        kind: str,
        vm: dict[str, Any] | None,
        finish: Callable[[], None],
        undo: Callable[[], None],
    ) -> FakeJob:
        job_id = f"job-{len(self.jobs) + 1}"
        data = {
            "id": job_id,
            "kind": kind,
            "vm": vm["name"] if vm else None,
            "vm_id": vm["id"] if vm else None,
            "state": "queued",
            "progress": 0,
            "message": "queued",
            "result": None,
            "error": None,
            "created_at": "2024-01-01T00:00:00+00:00",
            "started_at": None,
            "finished_at": None,
        }
        self.jobs[job_id] = FakeJob(data, finish, undo)
        return self.jobs[job_id]

    def _job(self, job_id: str, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        wait = float(query.get("wait", ["0"])[0])
        if not 0 <= wait <= 60:
            raise InvalidSetting("wait", wait, "0-60 seconds")
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if job.data["state"] in ("queued", "running"):
            self._advance(job)
        return 200, job.data

    def _cancel_job(self, job_id: str, **_: Any) -> tuple[int, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if job.data["state"] != "queued":
            state = job.data["state"]
            raise Conflict(f"job {job_id} is {state}; only queued jobs can be cancelled")
        job.undo()
        job.data.update(state="cancelled", message="cancelled")
        return 200, job.data

    def _remove_nic(self, ref: str, index: str, **_: Any) -> tuple[int, Any]:
        vm = self._vm(ref)
        adapters = vm["settings"]["network_adapters"]
        if not 1 <= int(index) <= len(adapters):
            raise NotFound(f"no network adapter {index}; allowed: --nic 1..{len(adapters)}")
        del adapters[int(index) - 1]
        return 200, vm

    def _screenshot(self, ref: str, **_: Any) -> tuple[int, Any]:
        vm = self._vm(ref)
        if vm["state"] != "Running":
            raise InvalidTransition(vm["name"], "screenshot", vm["state"], [])
        return 200, PNG

    def _advance(self, job: FakeJob) -> None:
        if job.steps:
            state, progress, message = job.steps.pop(0)
            job.data.update(state=state, progress=progress, message=message)
            return
        error = self.fail_jobs.pop(job.data["vm"] or "", None)
        if error:
            job.undo()
            job.data.update(state="failed", message=error["message"], error=error)
        else:
            job.finish()
            job.data.update(state="completed", progress=100, message="completed")
        job.data["finished_at"] = "2024-01-01T00:00:01+00:00"

    @staticmethod
    def _set_state(vm: dict[str, Any], state: str) -> None:
        vm["state"] = state
        vm["enabled_state"] = ENABLED_STATE.get(state, 32768)
        running = state in ("Running", "Paused")
        vm["uptime_s"] = RUNNING_UPTIME_S if running else 0.0
        vm["pid"] = 4242 if running else None


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _check_memory(megabytes: Any) -> None:
    if not isinstance(megabytes, int) or megabytes < 8:
        raise InvalidSetting("memory.startup_mb", megabytes, "8 to 65536 MB")


def _drive(body: dict[str, Any], key: str, controller: int, kind: str) -> dict[str, Any] | None:
    path = body.get(key)
    if path is None:
        return None
    if not Path(path).is_absolute():
        raise BadRequest(f"{key} must be an absolute path, got {path!r}")
    if not Path(path).exists():
        raise NotFound(f"{key} file {path} does not exist; nothing was changed")
    fmt = "raw" if kind == "dvd" else "vpc"
    return {"controller": controller, "location": 0, "kind": kind, "path": path, "format": fmt}


def _handler_for(service: FakeService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else each answer waits ~40 ms for a delayed ACK

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = service.handle(
                self.command, self.path, headers, json.loads(raw) if raw else None
            )
            binary = isinstance(answer, bytes)
            payload = answer if binary else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "image/png" if binary else "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = _dispatch

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
