"""Meta-test (virtinst spirit): every settings field is exercised by a golden case or a test.

A field counts as exercised when the golden QEMU cases give it at least two different
values (so the renderer has seen it change), or when an invalid case in
``model_cases.py`` names it in the error it expects.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast, get_args, get_origin, get_type_hints

from tests.model.model_cases import CASES
from viridian.model import VMSettings, settings_from_dict

GOLDEN = Path(__file__).parents[1] / "qemu" / "golden"


def _children(cls: type[Any]) -> Iterator[tuple[str, type[Any] | None, bool]]:
    """(field name, nested dataclass or None, is a list of it) for each field of ``cls``."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        item = get_args(kind)[0] if get_origin(kind) is tuple else None
        if dataclasses.is_dataclass(kind):
            yield f.name, cast(type[Any], kind), False
        elif item is not None and dataclasses.is_dataclass(item):
            yield f.name, cast(type[Any], item), True
        else:
            yield f.name, None, False


def field_paths(cls: type[Any], prefix: str = "") -> Iterator[str]:
    """Every leaf field of a settings dataclass, list items written ``name[]``."""
    for name, nested, is_list in _children(cls):
        if nested is None:
            yield prefix + name
        else:
            yield from field_paths(nested, f"{prefix}{name}{'[]' if is_list else ''}.")


def field_values(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every leaf field in a settings instance."""
    for name, nested, is_list in _children(type(value)):
        item = getattr(value, name)
        if nested is None:
            yield prefix + name, item
        elif is_list:
            for element in item:
                yield from field_values(element, f"{prefix}{name}[].")
        else:
            yield from field_values(item, f"{prefix}{name}.")


def exercised_by_golden() -> set[str]:
    seen: dict[str, set[str]] = defaultdict(set)
    instances = [VMSettings(name="defaults")]
    for golden in GOLDEN.glob("*.json"):
        instances.append(settings_from_dict(json.loads(golden.read_text())["settings"]))
    for settings in instances:
        for path, value in field_values(settings):
            seen[path].add(repr(value))
    return {path for path, values in seen.items() if len(values) >= 2}


def exercised_by_invalid_cases() -> set[str]:
    return {re.sub(r"\[\d+\]", "[]", case.setting) for case in CASES}


def test_field_list_covers_nested_and_list_fields() -> None:
    paths = set(field_paths(VMSettings))
    assert {"name", "processor.compatibility_mode", "scsi[].disks[].location"} <= paths
    assert "ide" not in paths and "scsi[].disks" not in paths


def test_every_settings_field_is_exercised() -> None:
    exercised = exercised_by_golden() | exercised_by_invalid_cases()
    missing = [path for path in field_paths(VMSettings) if path not in exercised]
    assert not missing, f"settings fields no golden case or test exercises: {missing}"


def test_golden_cases_alone_vary_every_field() -> None:
    missing = [path for path in field_paths(VMSettings) if path not in exercised_by_golden()]
    assert not missing, f"settings fields the golden cases never vary: {missing}"
