"""Cluster-wide settings of a host's membership (docs/api.md, "Cluster"): shared folders
and etcd member sites are checked, recorded at create and taken by a join that names
none; an HA VM's files must be inside a shared folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from viridian.errors import InvalidSetting
from viridian.model import settings_from_dict
from viridian.service.cluster.cluster_wide import inherit, stamp
from viridian.service.cluster.config import ClusterConfig
from viridian.service.cluster.shared_check import check_on_shared_storage

URLS = "http://127.0.0.1:2379,http://127.0.0.1:2380"


def test_shared_folders_and_etcd_sites_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidSetting, match=r"etcd_sites.*one of the etcd endpoints"):
        ClusterConfig.parse("c", URLS, "h", etcd_sites={"http://10.0.0.9:2379": "east"})
    with pytest.raises(InvalidSetting, match=r"shared.*absolute folder paths"):
        ClusterConfig.parse("c", URLS, "h", shared=("relative/dir",))
    with pytest.raises(InvalidSetting, match="etcd_sites"):
        ClusterConfig.parse("c", URLS, "h", etcd_sites={"http://127.0.0.1:2379/": "a b"})
    missing = ClusterConfig.parse("c", URLS, "h", shared=(str(tmp_path / "nope"),))
    with pytest.raises(InvalidSetting, match="not a folder on this host"):
        inherit(missing, None)


def test_a_join_takes_the_clusters_shared_folders_and_etcd_sites(tmp_path: Path) -> None:
    made = ClusterConfig.parse("c", URLS, "a", shared=(str(tmp_path),),
                               etcd_sites={"http://127.0.0.1:2379/": "east",
                                           "http://127.0.0.1:2380": "west"})
    assert made.etcd_site("http://127.0.0.1:2379") == "east"
    joined = inherit(ClusterConfig.parse("c", URLS, "b"), stamp(made))
    assert joined.shared == (str(tmp_path),) and joined.etcd_sites == made.etcd_sites
    own = inherit(ClusterConfig.parse("c", URLS, "b", etcd_sites={
        "http://127.0.0.1:2380": "x"}), stamp(made))
    assert own.etcd_sites == (("http://127.0.0.1:2380", "x"),)


def test_an_ha_vm_must_be_inside_a_shared_folder() -> None:
    config = ClusterConfig.parse("c", URLS, "a", shared=("/srv/shared",))
    ha = settings_from_dict({"name": "v", "high_availability": {"ha": True}, "scsi": [
        {"controller": 0, "disks": [{"location": 0, "path": "/srv/shared/v/d.vhdx"}]}]})
    check_on_shared_storage(config, "v", "/srv/shared/v", ha)
    with pytest.raises(InvalidSetting, match="its folder /srv/sharedx/v is not on"):
        check_on_shared_storage(config, "v", "/srv/sharedx/v", ha)
    with pytest.raises(InvalidSetting, match=r"scsi 0:0 disk /srv/shared/../x.vhdx"):
        check_on_shared_storage(config, "v", "/srv/shared/v", settings_from_dict(
            {"name": "v", "high_availability": {"ha": True}, "scsi": [{"controller": 0,
             "disks": [{"location": 0, "path": "/srv/shared/../x.vhdx"}]}]}))
    off = settings_from_dict({"name": "v"})
    check_on_shared_storage(config, "v", "/elsewhere", off)
    check_on_shared_storage(ClusterConfig.parse("c", URLS, "a"), "v", "/elsewhere", ha)
