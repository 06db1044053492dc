"""Partial updates of settings (``vm set``, PATCH): deep merge, then validate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from viridian.errors import BadRequest
from viridian.model.codec import settings_from_dict, to_dict
from viridian.model.settings import VMSettings


def merge_settings(settings: VMSettings, patch: Mapping[str, Any]) -> VMSettings:
    """``settings`` with ``patch`` (a partial dict of the settings shape) applied.

    Objects merge key by key, recursively; lists (``ide``, ``scsi``, ``network_adapters``,
    ``bios.startup_order``) and scalars replace the old value whole. The result is
    validated; ``settings`` itself is never changed. Raises :class:`BadRequest` for a patch
    that is not an object or names unknown keys, :class:`InvalidSetting` for invalid values.
    """
    if not isinstance(patch, Mapping):
        raise BadRequest(f"a settings patch must be an object, not {type(patch).__name__}")
    return settings_from_dict(_deep_merge(to_dict(settings), patch))


def _deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in patch.items():
        old = result.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            result[key] = _deep_merge(old, value)
        else:
            result[key] = value
    return result
