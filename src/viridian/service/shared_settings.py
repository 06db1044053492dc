"""Equal parts of VM settings held once, whatever the number of VMs
(docs/architecture.md, "Scale").

Typed settings (:class:`viridian.model.VMSettings`) are frozen dataclasses, so two VMs
with the same processor settings, COM ports or integration services can share one
object: nobody can change it. :func:`shared` returns settings equal to the ones given,
whose parts (each dataclass-valued field, and each item of a tuple-valued field) are the
one canonical instance of their value. Ten thousand VMs made from the same template then
hold one ``ProcessorSettings``, not ten thousand.

Canonical instances are kept weakly: a value no VM uses any more is forgotten.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any, TypeVar

T = TypeVar("T")

_canonical: weakref.WeakValueDictionary[tuple[Any, ...], Any] = weakref.WeakValueDictionary()


def shared(settings: T) -> T:
    """``settings`` with every part replaced by the canonical equal instance (``settings``
    itself when nothing changed or it is not a dataclass instance)."""
    if not dataclasses.is_dataclass(settings) or isinstance(settings, type):
        return settings
    changes: dict[str, Any] = {}
    for name, value in vars(settings).items():
        canonical = _shared_value(value)
        if canonical is not value:
            changes[name] = canonical
    return dataclasses.replace(settings, **changes) if changes else settings


def _shared_value(value: Any) -> Any:
    if isinstance(value, tuple) and value and all(_is_part(item) for item in value):
        items = tuple(_canonical_part(item) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return _canonical_part(value) if _is_part(value) else value


def _is_part(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type) \
        and hasattr(value, "__weakref__")


def _canonical_part(part: Any) -> Any:
    try:
        key = (type(part), *((type(v), v) for v in vars(part).values()))
        found = _canonical.get(key)
    except TypeError:  # an unhashable field: not shared
        return part
    if found is not None:
        return found
    _canonical[key] = part
    return part
