"""The etcd client against a real 3-member cluster: keys, transactions, leases bound to
keys, and endpoint rotation past a frozen and a dead member."""

from __future__ import annotations

import pytest

from tests.cluster.etcd_members import EtcdCluster
from viridian.cluster.errors import ClusterUnavailable
from viridian.cluster.etcd import Compare, Etcd, Op, parse_endpoints
from viridian.errors import InvalidSetting


def test_keys_prefixes_and_transactions(etcd: EtcdCluster) -> None:
    client = Etcd(etcd.endpoints)
    client.put("/t/a", "1")
    client.put("/t/b", "2")
    client.put("/u/c", "3")
    _, kvs = client.get_prefix("/t/")
    assert [(kv.key, kv.value) for kv in kvs] == [("/t/a", "1"), ("/t/b", "2")]
    claim = client.txn([Compare("/t/owner", "CREATE", 0)], [Op("put", "/t/owner", "h1")])
    again = client.txn([Compare("/t/owner", "CREATE", 0)], [Op("put", "/t/owner", "h2")])
    assert claim.succeeded and not again.succeeded
    owner = client.get("/t/owner")
    assert owner is not None and owner.value == "h1"


def test_a_lease_bound_key_goes_with_its_lease(etcd: EtcdCluster) -> None:
    client = Etcd(etcd.endpoints)
    lease = client.grant(5)
    client.put("/l/k", "v", lease=lease)
    assert client.keepalive(lease) == 5
    client.revoke(lease)
    assert client.get("/l/k") is None
    assert client.keepalive(lease) == 0


def test_requests_rotate_past_a_frozen_member(etcd: EtcdCluster) -> None:
    # a follower: freezing the leader also means an election, tested with the agent
    first = next(m for m in etcd.members if m is not etcd.leader())
    others = [url for url in etcd.endpoints if url != first.client_url]
    client = Etcd([first.client_url, *others], request_timeout=2.0)
    lease = client.grant(10)
    etcd.freeze(first)
    try:
        assert client.current_endpoint == first.client_url
        assert client.keepalive(lease) == 10
        assert client.current_endpoint != first.client_url
    finally:
        etcd.thaw(first)
    etcd.wait_healthy()


def test_no_endpoint_answering_is_a_named_error() -> None:
    client = Etcd(["http://127.0.0.1:9", "http://127.0.0.1:7"], request_timeout=0.5)
    with pytest.raises(ClusterUnavailable, match="no etcd endpoint answered"):
        client.get("/x")


def test_endpoint_list_parsing_refuses_what_is_not_http_host_port() -> None:
    assert parse_endpoints("http://a:1, http://b:2/") == ("http://a:1", "http://b:2")
    for bad in ("", "a:1", "https://a:1", "http://a"):
        with pytest.raises(InvalidSetting, match="allowed: http://HOST:PORT"):
            parse_endpoints(bad)

