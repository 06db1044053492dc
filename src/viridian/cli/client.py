"""The CLI's client of the service API (``/work/notes/api.md``, prefix ``/api/v1``).

This module is the one boundary where foreign exceptions enter the CLI: every httpx
error and every error response is translated here into a :mod:`viridian.errors` class,
so the CLI root only ever sees ``ViridianError`` (whose ``exit_code`` follows api.md:
2 for 400, 3 for 404, 4 for 409, 5 for 401, 6 for 5xx, 7 when the service is unreachable).

Finding the service: ``--url`` / ``VIRIDIAN_URL`` / :data:`viridian.config.DEFAULT_URL`.
Finding the token: ``--token`` / ``VIRIDIAN_TOKEN`` / ``<data_dir>/token``. A missing token
is not an error here: the request goes out without one, so an unreachable service still
reports exit 7, and the service's 401 is shown with a hint saying where the token was sought.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import httpx

from viridian import config
from viridian.errors import (
    AdmissionRefused,
    BadRequest,
    Conflict,
    HostError,
    InvalidSetting,
    InvalidTransition,
    NotFound,
    Unauthorized,
    ViridianError,
)

__all__ = [
    "ApiClient",
    "ClientOptions",
    "Endpoint",
    "ServiceUnreachable",
    "error_from_body",
    "job_outcome",
    "load_token",
    "open_client",
    "vm_path",
    "wait_for_job",
]

REQUEST_TIMEOUT_S = 30.0
WAIT_SLICE_S = 1
"""Each long-poll of a job lasts at most this long, so progress refreshes about once a second."""
UNFINISHED_JOB_STATES = frozenset({"queued", "running"})

ERRORS_BY_CODE: dict[str, type[ViridianError]] = {
    "invalid_setting": InvalidSetting,
    "bad_request": BadRequest,
    "unauthorized": Unauthorized,
    "not_found": NotFound,
    "conflict": Conflict,
    "invalid_transition": InvalidTransition,
    "admission_refused": AdmissionRefused,
    "host_error": HostError,
    "internal_error": HostError,  # api.md: every 5xx exits 6
}
ERRORS_BY_STATUS: dict[int, type[ViridianError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
}


class ServiceUnreachable(ViridianError):
    """The service did not answer at the URL tried (exit 7)."""

    exit_code = 7
    code = "service_unreachable"


@dataclass(frozen=True)
class Endpoint:
    """Where the service is and how to authenticate. ``token_origin`` explains the token."""

    url: str
    token: str | None
    token_origin: str

    @classmethod
    def resolve(cls, url: str, token: str | None, data_dir: Path) -> Endpoint:
        """An explicit ``token`` wins; else the token file in ``data_dir`` (if readable)."""
        if "://" not in url:
            url = f"http://{url}"
        if token:
            return cls(url.rstrip("/"), token, "the token given by --token or VIRIDIAN_TOKEN")
        found, origin = load_token(data_dir)
        return cls(url.rstrip("/"), found, origin)


@dataclass(frozen=True)
class ClientOptions:
    """The root command's ``--url``, ``--token`` and ``--data-dir``, kept as ``ctx.obj``."""

    url: str
    token: str | None
    data_dir: Path


def open_client(ctx: click.Context) -> ApiClient:
    """An API client for this invocation, closed when the root context closes."""
    options = ctx.find_object(ClientOptions)
    if options is None:
        raise RuntimeError("open_client needs the root command's ClientOptions in ctx.obj")
    endpoint = Endpoint.resolve(options.url, options.token, options.data_dir)
    return ctx.find_root().with_resource(ApiClient(endpoint))


def load_token(data_dir: Path) -> tuple[str | None, str]:
    """Read ``<data_dir>/token``: (token or None, a phrase saying where it came from or why not)."""
    path = config.token_path(data_dir)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        return None, (
            f"no token: {path} could not be read ({reason}); pass --token or set VIRIDIAN_TOKEN"
        )
    return (token or None), f"the token in {path}"


def vm_path(ref: str, *rest: str) -> str:
    """API path of a VM (name or id), quoted so that any name is one path segment."""
    return "/".join(["/vms", quote(ref, safe=""), *rest])


def error_from_body(body: Any, status: int = 500) -> ViridianError:
    """The viridian error for an api.md error object ``{"code", "message", "details"}``.

    The class is chosen by ``code`` (else by HTTP ``status``), so its ``exit_code`` is the
    one api.md assigns. The instance is built through the root initialiser because the
    service already formatted the message.
    """
    if not isinstance(body, dict):
        body = {}
    cls = ERRORS_BY_CODE.get(str(body.get("code")), _class_for_status(status))
    message = str(body.get("message") or f"the service answered HTTP {status}")
    details = body.get("details")
    error = cls.__new__(cls)
    ViridianError.__init__(error, message)
    error.details = dict(details) if isinstance(details, dict) else {}
    return error


def _class_for_status(status: int) -> type[ViridianError]:
    return HostError if status >= 500 else ERRORS_BY_STATUS.get(status, BadRequest)


class ApiClient:
    """Synchronous JSON client of the service. Every method raises only ``ViridianError``."""

    def __init__(self, endpoint: Endpoint, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {endpoint.token}"} if endpoint.token else {}
        self.endpoint = endpoint
        self._http = httpx.Client(
            base_url=endpoint.url + config.API_PREFIX,
            headers=headers,
            timeout=REQUEST_TIMEOUT_S,
            transport=transport,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: dict[str, Any] | None = None, timeout: float = 0) -> Any:
        return self.request("GET", path, params=params, timeout=timeout)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, body=body)

    def delete(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("DELETE", path, params=params)

    def get_bytes(self, path: str) -> bytes:
        """GET a non-JSON answer (e.g. ``image/png``); errors are translated as for JSON."""
        try:
            response = self._http.get(path)
        except (httpx.HTTPError, httpx.InvalidURL) as err:
            raise self._transport_error(err) from err
        if response.is_error:
            raise self._response_error(response)
        return response.content

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float = 0,
    ) -> Any:
        """Send one request; the decoded JSON answer, or the translated error raised."""
        try:
            response = self._http.request(
                method, path, json=body, params=params, timeout=timeout or REQUEST_TIMEOUT_S
            )
        except (httpx.HTTPError, httpx.InvalidURL) as err:
            raise self._transport_error(err) from err
        if response.is_error:
            raise self._response_error(response)
        return self._decode(response)

    def _decode(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as err:
            raise HostError(
                f"the server at {self.endpoint.url} did not answer JSON; "
                "is --url / VIRIDIAN_URL pointing at the viridian service?"
            ) from err

    def _response_error(self, response: httpx.Response) -> ViridianError:
        try:
            body = response.json().get("error")
        except (ValueError, AttributeError):
            body = None
        if not isinstance(body, dict):
            body = {"message": self._foreign_answer(response.status_code)}
        if response.status_code == 401:
            said = body.get("message") or "unauthorized"
            body = {**body, "message": f"{said} (sent {self.endpoint.token_origin})"}
        return error_from_body(body, response.status_code)

    def _foreign_answer(self, status: int) -> str:
        return (
            f"the server at {self.endpoint.url} answered HTTP {status} without a viridian "
            "error; is --url / VIRIDIAN_URL pointing at the viridian service?"
        )

    def _transport_error(self, err: Exception) -> ViridianError:
        url = self.endpoint.url
        if isinstance(err, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return BadRequest(f"invalid service URL {url!r}: {err}; use http://HOST:PORT")
        if isinstance(err, httpx.TimeoutException):
            why = f"did not answer within {REQUEST_TIMEOUT_S:g} s"
        else:
            why = f"cannot be reached ({err or type(err).__name__})"
        return ServiceUnreachable(
            f"the viridian service at {url} {why}; start it with `viridian serve`, "
            "or point --url / VIRIDIAN_URL at a running one",
            url=url,
        )


def wait_for_job(
    client: ApiClient, job: dict[str, Any], on_update: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Long-poll ``GET /jobs/{id}?wait=...`` until the job leaves queued/running.

    ``on_update`` sees every version of the job, the final one included. Returns the
    final job whatever its state; see :func:`job_outcome` for turning failure into an error.
    """
    on_update(job)
    while job["state"] in UNFINISHED_JOB_STATES:
        job = client.get(
            f"/jobs/{quote(str(job['id']), safe='')}",
            params={"wait": WAIT_SLICE_S},
            timeout=REQUEST_TIMEOUT_S + WAIT_SLICE_S,
        )
        on_update(job)
    return job


def job_outcome(job: dict[str, Any]) -> dict[str, Any]:
    """The job itself when it completed; raises the job's error when it failed or was cancelled."""
    if job["state"] == "failed":
        raise error_from_body(job.get("error") or {"message": f"job {job['id']} failed"})
    if job["state"] == "cancelled":
        raise Conflict(f"job {job['id']} ({job.get('kind')}) was cancelled", job=job["id"])
    return job
