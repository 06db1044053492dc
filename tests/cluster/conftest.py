"""One real 3-member etcd cluster per test module that asks for it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.etcd_members import EtcdCluster, etcd_cluster


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: run `make deps` (scripts/install-deps.sh)")
    folder: Path = tmp_path_factory.mktemp("etcd")
    with etcd_cluster(folder) as cluster:
        yield cluster
