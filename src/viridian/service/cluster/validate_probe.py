"""A host's side of ``cluster validate`` (docs/architecture.md, "Failover cluster:
validate"): the agent notices a validate request key and answers it, off its own thread
(a hung shared folder must not stall keepalives).

Keys, under the cluster's root, all bound to the request's lease (gone when the
validating host revokes it, or after 60 s):

- ``validate/<id>``            the request: who asks, the lease, the shared folders;
- ``validate-answers/<id>/<host>``  each host's answer: its wall clock (read just before
  the put), its round trip to etcd, QEMU version, accelerator, CPU model and flags
  (``/proc/cpuinfo``), and for each shared folder whether it wrote, locked (``flock``:
  a second open of the file must be refused the lock) and read back a probe file
  ``<folder>/.viridian-validate/<id>/<host>``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from viridian.cluster.etcd import Etcd
from viridian.cluster.ownership import root
from viridian.errors import ViridianError

__all__ = ["PROBE_DIR", "ValidateResponder", "answers_prefix", "cpu_facts", "probe_file",
           "request_key", "requests_prefix"]

log = logging.getLogger(__name__)

PROBE_DIR = ".viridian-validate"


def requests_prefix(cluster: str) -> str:
    return f"{root(cluster)}validate/"


def request_key(cluster: str, request: str) -> str:
    return requests_prefix(cluster) + request


def answers_prefix(cluster: str, request: str) -> str:
    return f"{root(cluster)}validate-answers/{request}/"


def probe_file(folder: str, request: str, host: str) -> Path:
    return Path(folder) / PROBE_DIR / request / host


def probe_text(request: str, host: str) -> str:
    return f"viridian validate {request} from {host}\n"


def cpu_facts(cpuinfo: str) -> tuple[str, list[str]]:
    """CPU model name and flags of the first processor in ``/proc/cpuinfo`` text."""
    model, flags = "", list[str]()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = value.split()
        if not line.strip() and model:
            break
    return model, sorted(flags)


def probe_folder(folder: str, request: str, host: str) -> dict[str, Any]:
    """Write, lock and read back this host's probe file in ``folder``."""
    path = probe_file(folder, request, host)
    try:
        if not Path(folder).is_dir():
            raise FileNotFoundError(errno.ENOENT, "no such folder", folder)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = probe_text(request, host)
        with open(path, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        with open(path) as first, open(path) as second:
            fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # the lock holds against a second opener, as it must
            else:
                return {"folder": folder, "ok": False,
                        "error": "flock is not exclusive here (a second open got the lock)"}
            finally:
                fcntl.flock(first, fcntl.LOCK_UN)
            if first.read() != text:
                return {"folder": folder, "ok": False, "error": "the probe read back differs"}
    except OSError as err:
        return {"folder": folder, "ok": False,
                "error": f"{type(err).__name__}: {err.strerror or err} ({path})"}
    return {"folder": folder, "ok": True}


class ValidateResponder:
    """Answers validate requests for this host; :meth:`poll` runs on the agent's thread
    once a tick (one range read), each answer on a thread of its own."""

    def __init__(self, etcd: Etcd, cluster: str, host: str,
                 facts: Callable[[], dict[str, Any]]) -> None:
        self.etcd = etcd
        self.cluster = cluster
        self.host = host
        self.facts = facts
        self._answered: set[str] = set()

    def poll(self) -> None:
        _, kvs = self.etcd.get_prefix(requests_prefix(self.cluster))
        current = {kv.key.rsplit("/", 1)[1]: kv for kv in kvs}
        self._answered &= set(current)
        for request, kv in current.items():
            if request in self._answered:
                continue
            self._answered.add(request)
            threading.Thread(target=self._answer, args=(request, kv.value, kv.lease),
                             name=f"validate-{request}", daemon=True).start()

    def _answer(self, request: str, body: str, lease: int) -> None:
        try:
            asked = json.loads(body)
            storage = [probe_folder(str(f), request, self.host) for f in asked.get("shared", ())]
            began = time.monotonic()
            self.etcd.get(request_key(self.cluster, request))
            rtt = time.monotonic() - began
            answer = {**self.facts(), "host": self.host, "storage": storage, "rtt_s": rtt,
                      "clock": time.time()}
            self.etcd.put(answers_prefix(self.cluster, request) + self.host,
                          json.dumps(answer), lease)
        except (ViridianError, ValueError, OSError) as err:
            log.warning("cluster validate: cannot answer request %s: %s", request, err)
        except Exception as err:  # an answer thread must never take the host down
            log.warning("cluster validate: answer %s failed: %s: %s", request,
                        type(err).__name__, err)


def host_facts(qemu_version: tuple[int, ...], accelerator: str) -> dict[str, Any]:
    """What this host publishes about its CPU and QEMU in a validate answer."""
    with contextlib.suppress(OSError):
        model, flags = cpu_facts(Path("/proc/cpuinfo").read_text())
        return {"qemu": ".".join(map(str, qemu_version)), "accelerator": accelerator,
                "cpu_model": model, "cpu_flags": flags}
    return {"qemu": ".".join(map(str, qemu_version)), "accelerator": accelerator,
            "cpu_model": "", "cpu_flags": []}
