"""The one etcd client of viridian: the v3 HTTP gateway through ``etcd3gw``, with endpoint
rotation (docs/architecture.md, "Failover cluster").

No etcd client rotates endpoints by itself, and a frozen member (SIGSTOP, partition)
accepts connections but never answers: every request here goes to the current endpoint
with a short timeout, and on a time-out, a refused connection or a server error the next
endpoint is tried, each once per request. The endpoint that answered stays current.
Keys and values are text (UTF-8); the gateway wants them base64 and 64-bit numbers as
strings — that translation lives here only.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal
from urllib.parse import urlsplit

from viridian.cluster.errors import ClusterUnavailable
from viridian.errors import InvalidSetting

__all__ = ["Compare", "Etcd", "KeyValue", "Op", "TxnResult", "parse_endpoints"]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _prefix_end(prefix: str) -> str:
    """The range end that selects every key starting with ``prefix`` (etcd's
    ``WithPrefix``: the prefix with its last byte plus one)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode()


def parse_endpoints(text: str) -> tuple[str, ...]:
    """``http://H:P[,http://H:P…]`` → the endpoint URLs; raises :class:`InvalidSetting`."""
    urls = tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise InvalidSetting("etcd", text, "http://HOST:PORT[,http://HOST:PORT...]")
    if not urls:
        raise InvalidSetting("etcd", text, "http://HOST:PORT[,http://HOST:PORT...]")
    return urls


@dataclass(frozen=True)
class KeyValue:
    """One key as read: its value, the lease it is bound to (0: none) and revisions."""

    key: str
    value: str
    lease: int
    create_revision: int
    mod_revision: int


@dataclass(frozen=True)
class Compare:
    """One guard of a transaction: ``target`` of ``key`` compared with ``value``.
    ``create_revision == 0`` means "the key does not exist"."""

    key: str
    target: Literal["VALUE", "CREATE", "MOD", "LEASE"]
    value: str | int
    result: Literal["EQUAL", "NOT_EQUAL"] = "EQUAL"

    def to_json(self) -> dict[str, Any]:
        fields = {"VALUE": "value", "CREATE": "create_revision", "MOD": "mod_revision",
                  "LEASE": "lease"}
        value = _b64(str(self.value)) if self.target == "VALUE" else str(self.value)
        return {"key": _b64(self.key), "target": self.target, "result": self.result,
                fields[self.target]: value}


@dataclass(frozen=True)
class Op:
    """One request of a transaction: put (with an optional lease), delete or get."""

    kind: Literal["put", "delete", "get"]
    key: str
    value: str = ""
    lease: int = 0

    def to_json(self) -> dict[str, Any]:
        if self.kind == "put":
            body: dict[str, Any] = {"key": _b64(self.key), "value": _b64(self.value)}
            if self.lease:
                body["lease"] = str(self.lease)
            return {"request_put": body}
        if self.kind == "delete":
            return {"request_delete_range": {"key": _b64(self.key)}}
        return {"request_range": {"key": _b64(self.key)}}


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int
    responses: list[dict[str, Any]] = field(default_factory=list)


def _kv(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(key=_unb64(raw["key"]), value=_unb64(raw.get("value", "")),
                    lease=int(raw.get("lease", 0)),
                    create_revision=int(raw.get("create_revision", 0)),
                    mod_revision=int(raw.get("mod_revision", 0)))


def _gateway_errors() -> ModuleType:
    """``etcd3gw.exceptions``, imported on first use: etcd3gw and requests cost a service
    without a cluster ~5 MB it never needs (docs/architecture.md, "Scale")."""
    from etcd3gw import exceptions

    return exceptions


def _retryable() -> tuple[type[Exception], ...]:
    errors = _gateway_errors()
    return (errors.ConnectionFailedError, errors.ConnectionTimeoutError,
            errors.InternalServerError)


class Etcd:
    """A client of one etcd cluster over its endpoints, thread-safe.

    Every method raises :class:`ClusterUnavailable` when no endpoint answered within
    ``request_timeout`` seconds each; a refusal by etcd itself (a bad request) is not
    retried on other endpoints.
    """

    def __init__(self, endpoints: Sequence[str], request_timeout: float = 1.0) -> None:
        if not endpoints:
            raise InvalidSetting("etcd", "", "at least one http://HOST:PORT")
        self.endpoints = tuple(endpoints)
        self._clients = [self._client(url, request_timeout) for url in self.endpoints]
        self._current = 0
        self._lock = threading.Lock()
        self.requests = 0  # answered requests (the benchmark's operation count)

    @staticmethod
    def _client(url: str, timeout: float) -> Any:
        import etcd3gw  # on first use, see _gateway_errors

        parts = urlsplit(url)
        return etcd3gw.Etcd3Client(host=parts.hostname or "", port=parts.port or 2379,
                                   timeout=timeout, api_path="/v3/")

    @property
    def current_endpoint(self) -> str:
        return self.endpoints[self._current]

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        errors: list[str] = []
        start = self._current
        for step in range(len(self._clients)):
            index = (start + step) % len(self._clients)
            client = self._clients[index]
            try:
                answer: dict[str, Any] = client.post(client.get_url(path), json=body)
            except _retryable() as err:
                errors.append(f"{self.endpoints[index]}: {type(err).__name__}")
                continue
            with self._lock:
                self._current = index
                self.requests += 1
            return answer
        with self._lock:
            self._current = (start + 1) % len(self._clients)
        raise ClusterUnavailable(
            f"no etcd endpoint answered ({'; '.join(errors)})", endpoints=list(self.endpoints))

    # -- leases ---------------------------------------------------------------
    def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; its id."""
        return int(self._call("/lease/grant", {"TTL": str(ttl)})["ID"])

    def keepalive(self, lease: int) -> int:
        """Renew ``lease``; the TTL etcd granted again, 0 when the lease is gone."""
        answer = self._call("/lease/keepalive", {"ID": str(lease)})
        return int(answer.get("result", {}).get("TTL", 0))

    def revoke(self, lease: int) -> None:
        """End ``lease`` now (its keys are deleted); a lease already gone is fine."""
        try:
            self._call("/lease/revoke", {"ID": str(lease)})
        except _gateway_errors().Etcd3Exception as err:
            if "not found" not in str(err):
                raise

    # -- keys -----------------------------------------------------------------
    def get(self, key: str) -> KeyValue | None:
        kvs = self._call("/kv/range", {"key": _b64(key)}).get("kvs", [])
        return _kv(kvs[0]) if kvs else None

    def get_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        """Every key under ``prefix`` and the store's revision they were read at."""
        answer = self._call("/kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix)})
        return int(answer["header"]["revision"]), [_kv(raw) for raw in answer.get("kvs", [])]

    def put(self, key: str, value: str, lease: int = 0) -> None:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        self._call("/kv/put", body)

    def delete(self, key: str) -> None:
        self._call("/kv/deleterange", {"key": _b64(key)})

    def delete_prefix(self, prefix: str) -> None:
        self._call("/kv/deleterange", {"key": _b64(prefix), "range_end": _prefix_end(prefix)})

    def txn(self, compare: Sequence[Compare], success: Sequence[Op],
            failure: Sequence[Op] = ()) -> TxnResult:
        """One etcd transaction: ``success`` when every guard holds, else ``failure``."""
        answer = self._call("/kv/txn", {"compare": [c.to_json() for c in compare],
                                        "success": [o.to_json() for o in success],
                                        "failure": [o.to_json() for o in failure]})
        return TxnResult(succeeded=bool(answer.get("succeeded", False)),
                         revision=int(answer["header"]["revision"]),
                         responses=list(answer.get("responses", [])))

    # -- health -----------------------------------------------------------------
    def member_health(self) -> list[dict[str, Any]]:
        """Each endpoint's answer to a status request: endpoint, healthy, leader, version."""
        return [self._health(url, client) for url, client in zip(self.endpoints, self._clients,
                                                                 strict=True)]

    @staticmethod
    def _health(url: str, client: Any) -> dict[str, Any]:
        try:
            status = client.status()
        except _gateway_errors().Etcd3Exception as err:
            return {"endpoint": url, "healthy": False, "error": type(err).__name__}
        header = status.get("header", {})
        return {"endpoint": url, "healthy": True, "version": status.get("version", ""),
                "is_leader": status.get("leader") == header.get("member_id"),
                "db_size": int(status.get("dbSize", 0))}

