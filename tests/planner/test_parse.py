"""Bad input files: each error names the key's path, the value and what is allowed."""

from __future__ import annotations

import pytest

from tests.planner.builders import document, host, workload
from viridian.errors import BadRequest, InvalidSetting, ViridianError
from viridian.planner import load_plan


def error_for(text: str) -> ViridianError:
    with pytest.raises((BadRequest, InvalidSetting)) as caught:
        load_plan(text, "plan.yaml")
    return caught.value


def test_example_file_loads() -> None:
    with open("docs/planner-example.yaml", encoding="utf-8") as file:
        request = load_plan(file.read())
    assert [h.name for h in request.hosts] == [
        "entry-sata",
        "dual-socket-15k",
        "quad-socket-15k",
        "dual-socket-ssd",
    ]
    assert request.settings.host_reserve_mb == 512
    assert request.hosts[0].storage.installed == 2


def test_yaml_syntax_error_names_line() -> None:
    err = error_for("workloads: [\n  {name: a\nhosts: []\n")
    assert str(err).startswith("plan.yaml: not valid YAML: ")
    assert "line 3" in str(err)


def test_top_level_must_be_a_mapping() -> None:
    assert str(error_for("- a\n- b\n")) == (
        "plan.yaml must be a mapping of keys to values, not a list (['a', 'b'])"
    )


def test_unknown_key_lists_allowed_keys() -> None:
    bad = document([workload("a", memroy="1 GB")], [host()])
    assert str(error_for(bad)) == (
        "unknown key 'memroy' in workloads[0] (workload 'a'); allowed keys: name, memory, "
        "processors, cpu_percent, iops, read_percent, disk, growth_percent, count"
    )


def test_missing_key() -> None:
    item = workload("a")
    del item["iops"]
    assert str(error_for(document([item], [host()]))) == (
        "missing key 'iops' in workloads[0] (workload 'a'); required keys: name, memory, "
        "processors, cpu_percent, iops, read_percent, disk"
    )


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            workload("a", memory="lots"),
            "invalid value 'lots' for workloads[0].memory (workload 'a'); allowed: a size such as "
            "512 MB, 16 GB or 1.5 TB (binary units), or a plain number of MB",
        ),
        (
            workload("a", read_percent=120),
            "invalid value 120 for workloads[0].read_percent (workload 'a'); "
            "allowed: a number 0-100",
        ),
        (
            workload("a", count=2.5),
            "invalid value 2.5 for workloads[0].count (workload 'a'); "
            "allowed: a whole number 1-10000",
        ),
        (
            workload("a", processors=True),
            "invalid value True for workloads[0].processors (workload 'a'); "
            "allowed: a whole number 1-240",
        ),
    ],
)
def test_bad_workload_values(item: dict[str, object], message: str) -> None:
    err = error_for(document([item], [host()]))
    assert isinstance(err, InvalidSetting)
    assert str(err) == message


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        (
            {"raid": 3},
            "invalid value 3 for hosts[0].storage.raid (host 'h'); allowed: 0, 1, 5, 6 or 10",
        ),
        (
            {"drive": "5400"},
            "invalid value '5400' for hosts[0].storage.drive (host 'h'); allowed: 7.2k, 10k, 15k "
            "(RPM) or ssd",
        ),
        (
            {"bays": 2, "drives": 4},
            "invalid value 4 for hosts[0].storage.drives (host 'h'); allowed: a whole number 1-2",
        ),
    ],
)
def test_bad_storage_values(storage: dict[str, object], message: str) -> None:
    assert str(error_for(document([workload()], [host("h", storage=storage)]))) == message


def test_raid_and_drive_spellings() -> None:
    shape = host("h", storage={"raid": "RAID 10", "drive": "15000 rpm"})
    storage = load_plan(document([workload()], [shape])).hosts[0].storage
    assert (storage.raid_level, storage.drive) == (10, "15k")


def test_bad_settings() -> None:
    assert str(error_for(document([workload()], [host()], max_vp_per_lp=0))) == (
        "invalid value 0 for settings.max_vp_per_lp; allowed: a number 1-64"
    )
    assert str(error_for(document([workload()], [host()], drive_iops={"5400": 60}))) == (
        "unknown drive type '5400' in settings.drive_iops; allowed: 7.2k, 10k, 15k (RPM) or ssd"
    )
    assert str(error_for(document([workload()], [host()], overcommit=True))).startswith(
        "unknown key 'overcommit' in settings; allowed keys: host_reserve, "
    )


def test_duplicate_names_and_empty_lists() -> None:
    assert str(error_for(document([workload("a"), workload("a")], [host()]))) == (
        "invalid value 'a' for workloads[1].name (duplicate); allowed: a name not used before"
    )
    assert str(error_for(document([], [host()]))) == (
        "workloads must be a non-empty list, not a list ([])"
    )


def test_safe_load_refuses_python_objects() -> None:
    err = error_for("workloads: !!python/object/apply:os.system ['true']\nhosts: []\n")
    assert "not valid YAML" in str(err)


def test_drive_iops_override() -> None:
    request = load_plan(document([workload()], [host()], drive_iops={"7200": 90, "ssd": 20000}))
    assert request.settings.drive_iops == {"7.2k": 90, "10k": 125, "15k": 175, "ssd": 20000}
