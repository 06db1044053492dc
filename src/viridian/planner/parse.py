"""The planner's input file: YAML text → :class:`PlanInput`, with clear errors.

Top level (``settings`` optional)::

    settings:  {host_reserve, vm_overhead: {first_gb, per_additional_gb}, max_vp_per_lp,
                max_cpu_percent, failover_spares, horizon_years, max_hosts, reference_ghz,
                currency, drive_iops: {7.2k, 10k, 15k, ssd}}
    workloads: [{name, memory, processors, cpu_percent, iops, read_percent, disk,
                 growth_percent, count}]
    hosts:     [{name, sockets, cores_per_socket, threads_per_core, ghz, memory, cost,
                 storage: {drive, drive_size, drive_iops, drive_cost, raid, bays, drives}}]

``docs/planner-example.yaml`` documents every key. Errors: a :class:`BadRequest` for YAML
syntax, a missing or an unknown key (naming the allowed keys), an
:class:`InvalidSetting` for a bad value (naming the key's path, the value and the allowed
values). Only ``yaml.safe_load`` is used: the input never constructs Python objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import yaml

from viridian.errors import BadRequest, InvalidSetting
from viridian.planner.spec import HostShape, PlanInput, Settings, Storage, Workload
from viridian.planner.storage import DEFAULT_DRIVE_IOPS, DRIVE_TYPES, RAID_LEVELS
from viridian.planner.units import SIZE_HELP, parse_size_mb

__all__ = ["load_plan", "parse_drive_type"]

T = TypeVar("T")
_REQUIRED = object()

_DRIVE_ALIASES = {
    "7.2k": "7.2k",
    "7200": "7.2k",
    "7k2": "7.2k",
    "sata": "7.2k",
    "10k": "10k",
    "10000": "10k",
    "15k": "15k",
    "15000": "15k",
    "ssd": "ssd",
}
DRIVE_HELP = "7.2k, 10k, 15k (RPM) or ssd"
RAID_HELP = "0, 1, 5, 6 or 10"


def load_plan(text: str, source: str = "<input>") -> PlanInput:
    """Parse and check a planner input; raises BadRequest or InvalidSetting (see module)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise BadRequest(f"{source}: not valid YAML: {_yaml_problem(err)}") from err
    top = Section(document, source, top=True)
    top.check_keys(required=("workloads", "hosts"), optional=("settings",))
    settings = _settings(top.optional_section("settings"))
    workloads = tuple(_workload(item) for item in top.items("workloads"))
    hosts = tuple(_host(item) for item in top.items("hosts"))
    _unique_names("workloads", [w.name for w in workloads])
    _unique_names("hosts", [h.name for h in hosts])
    return PlanInput(workloads, hosts, settings)


def _yaml_problem(err: yaml.YAMLError) -> str:
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"{err.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(err)


def _unique_names(kind: str, names: list[str]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise InvalidSetting(
                f"{kind}[{index}].name", name, "a name not used before", "duplicate"
            )
        seen.add(name)


def parse_drive_type(value: object) -> str | None:
    """``7200``, ``"7.2k"``, ``"15k rpm"``, ``"SSD"`` … → a key of DRIVE_TYPES (None: unknown)."""
    text = str(value).strip().lower().removesuffix("rpm").strip()
    return _DRIVE_ALIASES.get(text)


class Section:
    """One mapping of the input, its path (``hosts[1].storage``) and a label for messages."""

    def __init__(self, value: object, path: str, label: str = "", top: bool = False) -> None:
        if not isinstance(value, Mapping):
            raise BadRequest(f"{path} must be a mapping of keys to values, not {_kind(value)}")
        self.values: Mapping[object, object] = value
        self.path = path
        self.label = label
        self.top = top

    def check_keys(self, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        """Raise BadRequest for a missing required key or a key that is not allowed."""
        allowed = ", ".join(required + optional)
        for key in self.values:
            if key not in required and key not in optional:
                raise BadRequest(f"unknown key {key!r} in {self.where}; allowed keys: {allowed}")
        for key in required:
            if key not in self.values:
                raise BadRequest(
                    f"missing key {key!r} in {self.where}; required keys: {', '.join(required)}"
                )

    @property
    def where(self) -> str:
        return f"{self.path} ({self.label})" if self.label else self.path

    def get(self, key: str, default: object) -> object:
        value = self.values.get(key, default)
        return default if value is None and default is not _REQUIRED else value

    def fail(self, key: str, value: object, allowed: str) -> InvalidSetting:
        return InvalidSetting(self.child_path(key), value, allowed, self.label)

    def read(
        self, key: str, default: object, convert: Callable[[object], T | None], help_: str
    ) -> T:
        """``convert`` the key's value (or ``default`` when absent); None from it = invalid."""
        raw = self.get(key, default)
        value = convert(raw)
        if value is None:
            raise self.fail(key, raw, help_)
        return value

    def text(self, key: str) -> str:
        return self.read(key, _REQUIRED, _name, "a non-empty name (letters, digits, - _ . space)")

    def integer(self, key: str, low: int, high: int, default: object = _REQUIRED) -> int:
        return self.read(key, default, _ranged(_int, low, high), f"a whole number {low}-{high}")

    def number(self, key: str, low: float, high: float, default: object = _REQUIRED) -> float:
        return self.read(key, default, _ranged(_float, low, high), f"a number {low:g}-{high:g}")

    def positive(self, key: str, default: object = _REQUIRED) -> float:
        return self.read(key, default, _above_zero, "a number greater than 0")

    def size(self, key: str, unit: str, default: object = _REQUIRED, zero: bool = False) -> float:
        low = 0.0 if zero else 1e-9
        convert = _ranged(lambda raw: parse_size_mb(raw, unit), low, float("inf"))
        mb = self.read(key, default, convert, SIZE_HELP.format(unit=unit))
        return mb / 1024 if unit == "GB" else mb

    def child_path(self, key: str) -> str:
        return key if self.top else f"{self.path}.{key}"

    def optional_section(self, key: str) -> Section:
        return Section(self.get(key, {}), self.child_path(key), self.label)

    def section(self, key: str) -> Section:
        return Section(self.values[key], self.child_path(key), self.label)

    def items(self, key: str) -> list[Section]:
        raw = self.values[key]
        if not isinstance(raw, list) or not raw:
            raise BadRequest(f"{self.child_path(key)} must be a non-empty list, not {_kind(raw)}")
        path = self.child_path(key)
        return [_item_section(item, f"{path}[{index}]", key) for index, item in enumerate(raw)]


def _item_section(item: object, path: str, kind: str) -> Section:
    name = item.get("name") if isinstance(item, Mapping) else None
    noun = "workload" if kind == "workloads" else "host"
    return Section(item, path, f"{noun} {name!r}" if isinstance(name, str) else noun)


def _kind(value: object) -> str:
    return "nothing" if value is None else f"a {type(value).__name__} ({value!r:.40})"


def _int(raw: object) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _float(raw: object) -> float | None:
    ok = isinstance(raw, int | float) and not isinstance(raw, bool)
    return float(raw) if ok else None  # type: ignore[arg-type]


def _above_zero(raw: object) -> float | None:
    value = _float(raw)
    return value if value is not None and value > 0 else None


def _ranged(
    convert: Callable[[object], T | None], low: float, high: float
) -> Callable[[object], T | None]:
    def checked(raw: object) -> T | None:
        value = convert(raw)
        return value if value is not None and low <= value <= high else None  # type: ignore[operator]

    return checked


def _name(raw: object) -> str | None:
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        return None
    text = str(raw).strip()
    ok = bool(text) and len(text) <= 64 and all(c.isalnum() or c in "-_. " for c in text)
    return text if ok else None


def _settings(section: Section) -> Settings:
    section.check_keys(
        (),
        (
            "host_reserve",
            "vm_overhead",
            "max_vp_per_lp",
            "max_cpu_percent",
            "failover_spares",
            "horizon_years",
            "max_hosts",
            "reference_ghz",
            "currency",
            "drive_iops",
        ),
    )
    overhead = section.optional_section("vm_overhead")
    overhead.check_keys((), ("first_gb", "per_additional_gb"))
    defaults = Settings()
    return Settings(
        host_reserve_mb=section.size("host_reserve", "MB", defaults.host_reserve_mb, zero=True),
        vm_overhead_first_gb_mb=overhead.size("first_gb", "MB", 32, zero=True),
        vm_overhead_per_gb_mb=overhead.size("per_additional_gb", "MB", 8, zero=True),
        max_vp_per_lp=section.number("max_vp_per_lp", 1, 64, defaults.max_vp_per_lp),
        max_cpu_percent=section.number("max_cpu_percent", 1, 100, defaults.max_cpu_percent),
        failover_spares=section.integer("failover_spares", 0, 8, defaults.failover_spares),
        horizon_years=section.number("horizon_years", 0, 20, defaults.horizon_years),
        max_hosts=section.integer("max_hosts", 1, 1024, defaults.max_hosts),
        reference_ghz=_optional_positive(section, "reference_ghz"),
        currency=section.read("currency", "", _currency, "a short label such as $, EUR or USD"),
        drive_iops=_drive_iops(section.optional_section("drive_iops")),
    )


def _optional_positive(section: Section, key: str) -> float | None:
    return None if section.get(key, None) is None else section.positive(key)


def _currency(raw: object) -> str | None:
    return raw.strip() if isinstance(raw, str) and len(raw.strip()) <= 8 else None


def _drive_iops(section: Section) -> dict[str, float]:
    table = dict(DEFAULT_DRIVE_IOPS)
    for key in section.values:
        drive = parse_drive_type(key)
        if drive is None:
            raise BadRequest(f"unknown drive type {key!r} in {section.path}; allowed: {DRIVE_HELP}")
        table[drive] = section.positive(str(key))
    return table


def _workload(section: Section) -> Workload:
    section.check_keys(
        ("name", "memory", "processors", "cpu_percent", "iops", "read_percent", "disk"),
        ("growth_percent", "count"),
    )
    return Workload(
        name=section.text("name"),
        memory_mb=section.size("memory", "MB"),
        processors=section.integer("processors", 1, 240),
        cpu_percent=section.number("cpu_percent", 0, 100),
        iops=section.number("iops", 0, 10_000_000),
        read_percent=section.number("read_percent", 0, 100),
        disk_gb=section.size("disk", "GB", zero=True),
        growth_percent=section.number("growth_percent", 0, 1000, 0.0),
        count=section.integer("count", 1, 10_000, 1),
    )


def _host(section: Section) -> HostShape:
    section.check_keys(
        ("name", "sockets", "cores_per_socket", "memory", "cost", "storage"),
        ("threads_per_core", "ghz"),
    )
    return HostShape(
        name=section.text("name"),
        sockets=section.integer("sockets", 1, 16),
        cores_per_socket=section.integer("cores_per_socket", 1, 256),
        threads_per_core=section.integer("threads_per_core", 1, 8, 1),
        ghz=_optional_positive(section, "ghz"),
        memory_mb=section.size("memory", "MB"),
        cost=section.number("cost", 0, 1e12),
        storage=_storage(section.section("storage")),
    )


def _storage(section: Section) -> Storage:
    section.check_keys(
        ("drive", "drive_size", "raid", "bays"), ("drive_cost", "drives", "drive_iops")
    )
    bays = section.integer("bays", 1, 1024)
    installed = None if section.get("drives", None) is None else section.integer("drives", 1, bays)
    return Storage(
        drive=section.read("drive", _REQUIRED, parse_drive_type, DRIVE_HELP),
        drive_size_gb=section.size("drive_size", "GB"),
        raid_level=section.read("raid", _REQUIRED, _raid_level, RAID_HELP),
        bays=bays,
        drive_cost=section.number("drive_cost", 0, 1e9, 0.0),
        installed=installed,
        drive_iops=_optional_positive(section, "drive_iops"),
    )


def _raid_level(raw: object) -> int | None:
    text = str(raw).strip().lower().removeprefix("raid").strip()
    level = int(text) if text.isdigit() and not isinstance(raw, bool) else None
    return level if level in RAID_LEVELS else None


assert set(_DRIVE_ALIASES.values()) == set(DRIVE_TYPES)
