"""Small helpers shared by the foreign XML readers (pure): parsing with a clear refusal,
children by local name (namespaces ignored), typed text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from viridian.errors import BadRequest


def parse_xml(data: bytes, where: str) -> ET.Element:
    """The root element of ``data`` (any encoding its declaration or BOM names).

    :raises BadRequest: ``data`` is not well-formed XML.
    """
    try:
        return ET.fromstring(data)
    except ET.ParseError as err:
        raise BadRequest(f"{where} is not XML ({err}); nothing was changed") from err


def local(tag: str) -> str:
    """``tag`` without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def child(element: ET.Element | None, *names: str) -> ET.Element | None:
    """The element at the path ``names`` below ``element`` (first match at each step)."""
    for name in names:
        if element is None:
            return None
        element = next((c for c in element if local(c.tag) == name), None)
    return element


def children(element: ET.Element | None, name: str) -> list[ET.Element]:
    """The direct children of ``element`` called ``name``."""
    return [] if element is None else [c for c in element if local(c.tag) == name]


def text(element: ET.Element | None, *names: str) -> str | None:
    """The stripped text at the path ``names`` (None when absent or empty)."""
    found = child(element, *names)
    value = (found.text or "").strip() if found is not None else ""
    return value or None


def integer(element: ET.Element | None, *names: str) -> int | None:
    """The integer at the path ``names`` (None when absent or not an integer)."""
    value = text(element, *names)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
