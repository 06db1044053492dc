"""The CLI's client of the service API (docs/api.md, prefix ``/api/v1``).

This module is the one boundary where foreign exceptions enter the CLI: every transport
error (``OSError``, ``http.client.HTTPException``) and every error response is translated
here into a :mod:`viridian.errors` class, so the CLI root only ever sees
``ViridianError`` (whose ``exit_code`` follows docs/api.md: 2 for 400, 3 for 404, 4 for
409, 5 for 401, 6 for 5xx, 7 when the service is unreachable).

The transport is the standard library's ``http.client`` (one keep-alive connection per
command): the CLI must start fast (docs/architecture.md, "CLI latency"), and an HTTP
library costs more to import than a whole command may take.

Finding the service: ``--url`` / ``VIRIDIAN_URL`` / :data:`viridian.config.DEFAULT_URL`.
Which token is sent is decided by :mod:`viridian.cli.credentials`.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import click

from viridian import config
from viridian.cli.credentials import (
    choose_token,
    load_token,
    read_service_record,
    recorder_alive,
    same_address,
)
from viridian.cli.options import ClientOptions
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

if TYPE_CHECKING:
    import ssl

    from viridian.cli.trust import Trust

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
WAIT_TIMEOUTS_TOLERATED = 4
"""A job wait gives up after this many consecutive unanswered polls (a busy host's service
may answer late; the job runs on regardless), ~2 minutes."""

ERRORS_BY_CODE: dict[str, type[ViridianError]] = {
    "invalid_setting": InvalidSetting,
    "bad_request": BadRequest,
    "unauthorized": Unauthorized,
    "not_found": NotFound,
    "conflict": Conflict,
    "invalid_transition": InvalidTransition,
    "admission_refused": AdmissionRefused,
    "host_error": HostError,
    "internal_error": HostError,  # docs/api.md: every 5xx exits 6
}
ERRORS_BY_STATUS: dict[int, type[ViridianError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
}
STALE_CONNECTION_ERRORS = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


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
        """The endpoint for ``url`` with the token :func:`choose_token` allows.

        :raises BadRequest: an empty explicit token. :raises Unauthorized: the local
            token would go to an address the local service does not listen on.
        """
        if "://" not in url:
            url = f"http://{url}"
        url = _local_scheme(url.rstrip("/"), data_dir)
        found, origin = choose_token(url, token, data_dir)
        return cls(url, found, origin)


def _local_scheme(url: str, data_dir: Path) -> str:
    """``http://`` → ``https://`` when the URL is the local service's address and it
    serves HTTPS (its ``service.json`` says so): the default URL keeps working."""
    if not url.startswith("http://"):
        return url
    record = read_service_record(data_dir)
    if (record is None or record.get("scheme") != "https" or not recorder_alive(record)
            or not same_address(url, record)):
        return url
    return "https://" + url.removeprefix("http://")


def open_client(ctx: click.Context) -> ApiClient:
    """An API client for this invocation, closed when the root context closes."""
    from viridian.cli.trust import Trust

    options = ctx.find_object(ClientOptions)
    if options is None:
        raise RuntimeError("open_client needs the root command's ClientOptions in ctx.obj")
    endpoint = Endpoint.resolve(options.url, options.token, options.data_dir)
    trust = Trust(options.data_dir, options.ca_file, options.trust_fingerprint)
    return ctx.find_root().with_resource(ApiClient(endpoint, trust))


def vm_path(ref: str, *rest: str) -> str:
    """API path of a VM (name or id), quoted so that any name is one path segment."""
    return "/".join(["/vms", quote(ref, safe=""), *rest])


def error_from_body(body: Any, status: int = 500) -> ViridianError:
    """The viridian error for a docs/api.md error object ``{"code", "message", "details"}``.

    The class is chosen by ``code`` (else by HTTP ``status``), so its ``exit_code`` is the
    one docs/api.md assigns. The instance is built through the root initialiser because the
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


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, content type and body bytes."""

    status: int
    content_type: str
    body: bytes

    @property
    def is_error(self) -> bool:
        return self.status >= 400


class ApiClient:
    """Synchronous JSON client of the service. Every method raises only ``ViridianError``."""

    def __init__(self, endpoint: Endpoint, trust: Trust | None = None) -> None:
        self.endpoint = endpoint
        self.trust = trust
        self._headers = {"Accept": "application/json", "User-Agent": "viridian-cli"}
        if endpoint.token:
            self._headers["Authorization"] = f"Bearer {endpoint.token}"
        self._connection: http.client.HTTPConnection | None = None
        self._used = False

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

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
        answer = self._send("GET", path, None, None, REQUEST_TIMEOUT_S)
        if answer.is_error:
            raise self.response_error(answer)
        return answer.body

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float = 0,
    ) -> Any:
        """Send one request; the decoded JSON answer, or the translated error raised."""
        answer = self._send(method, path, body, params, timeout or REQUEST_TIMEOUT_S)
        if answer.is_error:
            raise self.response_error(answer)
        return self._decode(answer)

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        params: dict[str, Any] | None,
        timeout: float,
    ) -> Answer:
        """One exchange; a kept-alive connection the server closed meanwhile is retried once."""
        target = self._target(path, params)
        payload = None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            try:
                return self._exchange(method, target, payload, headers, timeout)
            except STALE_CONNECTION_ERRORS:
                if not self._used:
                    raise
                self.close()
                return self._exchange(method, target, payload, headers, timeout)
        except (OSError, http.client.HTTPException) as err:
            self.close()
            raise self.transport_error(err) from err

    def _exchange(
        self,
        method: str,
        target: str,
        payload: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> Answer:
        connection = self._connect(timeout)
        connection.request(method, target, body=payload, headers=headers)
        response = connection.getresponse()
        answer = Answer(response.status, response.getheader("Content-Type", ""), response.read())
        self._used = True
        if response.will_close:
            self.close()
        return answer

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        parts = urlsplit(self.endpoint.url)
        if self._connection is None:
            self._used = False
            self._connection = _new_connection(parts.scheme, parts.netloc, self.tls_context)
        self._connection.timeout = timeout
        if self._connection.sock is not None:
            self._connection.sock.settimeout(timeout)
        return self._connection

    def tls_context(self) -> ssl.SSLContext:
        """The TLS context for this service (viridian.cli.trust); checked before sending.

        :raises UntrustedCertificate: the certificate is not trusted.
        """
        from viridian.cli.trust import Trust

        trust = self.trust or Trust(Path("/nonexistent"))
        return trust.context_for(self.endpoint.url)

    def _target(self, path: str, params: dict[str, Any] | None) -> str:
        prefix = urlsplit(self.endpoint.url).path
        query = f"?{urlencode(params)}" if params else ""
        return f"{prefix}{config.API_PREFIX}{path}{query}"

    def _decode(self, answer: Answer) -> Any:
        try:
            return json.loads(answer.body)
        except ValueError as err:
            raise HostError(
                f"the server at {self.endpoint.url} did not answer JSON; "
                "is --url / VIRIDIAN_URL pointing at the viridian service?"
            ) from err

    def response_error(self, answer: Answer) -> ViridianError:
        """The viridian error an error answer means (also for WebSocket handshakes)."""
        try:
            body = json.loads(answer.body).get("error")
        except (ValueError, AttributeError):
            body = None
        if not isinstance(body, dict):
            body = {"message": self._foreign_answer(answer.status)}
        if answer.status in (401, 403):
            said = body.get("message") or "unauthorized"
            body = {**body, "message": f"{said} (sent {self.endpoint.token_origin})"}
        return error_from_body(body, answer.status)

    def _foreign_answer(self, status: int) -> str:
        if status in (401, 403):
            return "missing or wrong token"
        return (
            f"the server at {self.endpoint.url} answered HTTP {status} without a viridian "
            "error; is --url / VIRIDIAN_URL pointing at the viridian service?"
        )

    def transport_error(self, err: Exception) -> ViridianError:
        """The viridian error a failed exchange means: exit 7 (unreachable) or 2 (bad URL)."""
        url = self.endpoint.url
        if type(err).__name__ == "SSLCertVerificationError" and self.trust is not None:
            return self.trust.refusal(url, err)
        if isinstance(err, InvalidServiceUrl):
            return BadRequest(f"invalid service URL {url!r}: {err}; use http://HOST:PORT")
        if isinstance(err, TimeoutError):
            why = f"did not answer within {REQUEST_TIMEOUT_S:g} s"
        else:
            why = f"cannot be reached ({err or type(err).__name__})"
        return ServiceUnreachable(
            f"the viridian service at {url} {why}; start it with `viridian serve`, "
            "or point --url / VIRIDIAN_URL at a running one",
            url=url,
            timed_out=isinstance(err, TimeoutError),
        )


class InvalidServiceUrl(http.client.HTTPException):
    """The URL is not ``http(s)://HOST[:PORT]``."""


def _new_connection(
    scheme: str, netloc: str, tls_context: Callable[[], ssl.SSLContext]
) -> http.client.HTTPConnection:
    """A (not yet connected) connection to ``netloc``.

    :raises InvalidServiceUrl: the scheme is not http/https or there is no host.
    """
    if scheme not in ("http", "https"):
        raise InvalidServiceUrl(f"unsupported scheme {scheme!r}")
    if not netloc:
        raise InvalidServiceUrl("no host")
    try:
        if scheme == "https":
            return http.client.HTTPSConnection(netloc, context=tls_context())
        return http.client.HTTPConnection(netloc)
    except http.client.InvalidURL as err:
        raise InvalidServiceUrl(str(err)) from err


def wait_for_job(
    client: ApiClient, job: dict[str, Any], on_update: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Long-poll ``GET /jobs/{id}?wait=...`` until the job leaves queued/running.

    ``on_update`` sees every version of the job, the final one included. Returns the
    final job whatever its state; see :func:`job_outcome` for turning failure into an error.
    """
    on_update(job)
    silent = 0
    while job["state"] in UNFINISHED_JOB_STATES:
        try:
            job = client.get(
                f"/jobs/{quote(str(job['id']), safe='')}",
                params={"wait": WAIT_SLICE_S},
                timeout=REQUEST_TIMEOUT_S + WAIT_SLICE_S,
            )
        except ServiceUnreachable as err:
            silent += 1
            if not err.details.get("timed_out") or silent >= WAIT_TIMEOUTS_TOLERATED:
                raise
            continue  # the job goes on in the service: a slow answer is asked again
        silent = 0
        on_update(job)
    return job


def job_outcome(job: dict[str, Any]) -> dict[str, Any]:
    """The job itself when it completed; raises the job's error when it failed or was cancelled."""
    if job["state"] == "failed":
        raise error_from_body(job.get("error") or {"message": f"job {job['id']} failed"})
    if job["state"] == "cancelled":
        raise Conflict(f"job {job['id']} ({job.get('kind')}) was cancelled", job=job["id"])
    return job
