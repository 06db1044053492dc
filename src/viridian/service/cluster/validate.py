"""``cluster validate`` on the host asked (docs/architecture.md, "Failover cluster:
validate"; docs/api.md, "Cluster"): measure, then judge with
:mod:`viridian.cluster.validate`. Runs off the event loop (``asyncio.to_thread``).

1. etcd: each member alone answers a few real range requests, timed.
2. A validate request key (``validate_probe``) under a 60 s lease; every live host's
   agent answers it. This host polls the answers every 50 ms: an answer's wall clock is
   compared with the middle of the window in which it appeared (between the last poll
   that did not see it and the first that did); the error bound is half that window plus
   the answering host's own etcd round trip.
3. Each host's probe file must be visible here with its content (same storage).
4. The probe files and the keys are removed (the lease revoked), on every path.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from viridian.cluster import validate as judge
from viridian.cluster.errors import ClusterUnavailable
from viridian.cluster.etcd import Etcd
from viridian.cluster.ownership import read_cluster, root
from viridian.cluster.validate import HostAnswer, MemberProbe
from viridian.errors import ViridianError
from viridian.service.cluster.validate_probe import (
    PROBE_DIR,
    answers_prefix,
    probe_file,
    probe_text,
    request_key,
)

if TYPE_CHECKING:
    from viridian.service.cluster.agent import HostAgent

__all__ = ["run_validation"]

ROUNDS = 5
ANSWER_TIMEOUT_S = 20.0
POLL_S = 0.05
REQUEST_TTL_S = 60


def probe_member(endpoint: str, site: str, cluster: str) -> MemberProbe:
    """``ROUNDS`` range reads of the cluster's ``created`` key on this member alone."""
    etcd = Etcd([endpoint], request_timeout=2.0)
    trips: list[float] = []
    try:
        for _ in range(ROUNDS):
            began = time.monotonic()
            etcd.get(root(cluster) + "created")
            trips.append(time.monotonic() - began)
    except ViridianError as err:
        return MemberProbe(endpoint, site, tuple(trips), str(err))
    return MemberProbe(endpoint, site, tuple(trips))


def collect_answers(etcd: Etcd, cluster: str, request: str, expected: set[str],
                    timeout: float = ANSWER_TIMEOUT_S) -> tuple[dict[str, HostAnswer],
                                                                 dict[str, dict[str, Any]]]:
    """Poll the answers until every ``expected`` host answered or ``timeout``; each with
    its clock offset and bound (module docstring, step 2). Also returns the raw answers."""
    answers: dict[str, HostAnswer] = {}
    raw: dict[str, dict[str, Any]] = {}
    unseen_since = time.time()  # the last poll start that did not see a missing answer
    end = time.monotonic() + timeout
    while expected - set(answers) and time.monotonic() < end:
        asked = time.time()
        _, kvs = etcd.get_prefix(answers_prefix(cluster, request))
        seen = time.time()
        for kv in kvs:
            host = kv.key.rsplit("/", 1)[1]
            if host in answers:
                continue
            d = json.loads(kv.value)
            middle, half = (unseen_since + seen) / 2, (seen - unseen_since) / 2
            answers[host] = HostAnswer.from_dict(d, float(d["clock"]) - middle,
                                                 half + float(d.get("rtt_s", 0.0)))
            raw[host] = d
        unseen_since = asked
        time.sleep(POLL_S)
    return answers, raw


def visible_probes(shared: tuple[str, ...], request: str,
                   raw: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, bool]]:
    """host → folder → whether this host reads that host's probe file with its content."""
    seen: dict[str, dict[str, bool]] = {}
    for host in raw:
        seen[host] = {}
        for folder in shared:
            try:
                ok = probe_file(folder, request, host).read_text() == probe_text(request, host)
            except OSError:
                ok = False
            seen[host][folder] = ok
    return seen


def run_validation(agent: HostAgent) -> dict[str, Any]:
    """The report of ``cluster validate`` (API object, docs/api.md)."""
    config, etcd = agent.config, agent.etcd
    began = time.monotonic()
    members = [probe_member(url, config.etcd_site(url), config.name)
               for url in config.endpoints]
    checks = [judge.etcd_quorum(members), judge.etcd_latency(members),
              judge.etcd_domains(members)]
    request = uuid.uuid4().hex[:12]
    try:
        view = read_cluster(etcd, config.name)
        expected = {h.name for h in view.hosts}
        lease = etcd.grant(REQUEST_TTL_S)
    except ClusterUnavailable as err:
        checks.append(judge.Check("cluster", judge.Status.FAIL, f"cannot read the cluster: "
                                  f"{err}", {}))
        return _report(config.name, config.host, request, checks, began)
    try:
        etcd.put(request_key(config.name, request),
                 json.dumps({"by": config.host, "shared": list(config.shared)}), lease)
        answers, raw = collect_answers(etcd, config.name, request, expected)
        checks += [judge.clock_skew(expected, answers),
                   judge.shared_storage(config.shared, expected, answers,
                                        visible_probes(config.shared, request, raw)),
                   judge.cpu_compatibility(answers),
                   judge.memory_n_plus_1(view.vms, view.hosts)]
    finally:
        for folder in config.shared:
            shutil.rmtree(f"{folder}/{PROBE_DIR}/{request}", ignore_errors=True)
            with contextlib.suppress(OSError):  # gone when no other validation runs
                os.rmdir(f"{folder}/{PROBE_DIR}")
        with contextlib.suppress(ClusterUnavailable):  # else it ends within REQUEST_TTL_S
            etcd.revoke(lease)
    return _report(config.name, config.host, request, checks, began)


def _report(cluster: str, host: str, request: str, checks: list[judge.Check],
            began: float) -> dict[str, Any]:
    return {"cluster": cluster, "host": host, "request": request,
            "duration_s": round(time.monotonic() - began, 2), **judge.report(checks)}
