"""Counter paths written as Perfmon writes them: ``\\Object(Instance)\\Counter``.

Perfmon's syntax (the "Specifying a Counter Path" page of the Performance Counters
documentation): an optional ``\\\\Computer`` prefix, the object (counter set), an
instance in parentheses for multi-instance sets, then the counter. Matching is
case-insensitive; ``*`` in the instance or the counter is a wildcard (``\\PhysicalDisk(*)\\*``).
Perfmon itself writes the disk object without a space, ``PhysicalDisk``; the spelling
``Physical Disk`` is accepted as an alias in queries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from viridian.errors import BadRequest, NotFound

VP = "Hyper-V Hypervisor Virtual Processor"
ROOT_VP = "Hyper-V Hypervisor Root Virtual Processor"
DISK = "PhysicalDisk"
MEMORY = "Memory"
STORAGE = "Hyper-V Virtual Storage Device"
NETWORK = "Hyper-V Virtual Network Adapter"
VM_MEMORY = "Hyper-V Dynamic Memory VM"
TOTAL = "_Total"

OBJECT_ALIASES = {"physical disk": DISK.lower()}
PATH_FORMS = r"\Object(Instance)\Counter or \Object\Counter (e.g. \Memory\Available MBytes)"

_PATH = re.compile(
    r"^(?:\\\\[^\\]+)?"  # optional \\computer
    r"\\(?P<object>[^\\(]+)(?:\((?P<instance>.*)\))?\\(?P<counter>[^\\]+)$"
)


@dataclass(frozen=True)
class CounterPath:
    """One parsed path; ``instance`` is None for single-instance objects (``\\Memory``)."""

    object: str
    instance: str | None
    counter: str

    def __str__(self) -> str:
        inst = f"({self.instance})" if self.instance is not None else ""
        return f"\\{self.object}{inst}\\{self.counter}"


def path(obj: str, counter: str, instance: str | None = None) -> str:
    """The path string for ``obj``, ``instance`` and ``counter``."""
    return str(CounterPath(obj, instance, counter))


def vp_instance(vm_name: str, vp: int) -> str:
    """Perfmon's instance of a VM's virtual processor: ``vm1:Hv VP 0``."""
    return f"{vm_name}:Hv VP {vp}"


def parse(text: str) -> CounterPath:
    """Parse a path; raises :class:`BadRequest` naming the text and the accepted forms."""
    match = _PATH.match(text.strip())
    if match is None:
        raise BadRequest(f"not a counter path: {text!r}; expected {PATH_FORMS}", path=text)
    return CounterPath(match["object"].strip(), match["instance"], match["counter"].strip())


@lru_cache(maxsize=4096)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in text.split("*")) + "$",
                      re.IGNORECASE | re.DOTALL)


def _object_key(name: str) -> str:
    key = name.strip().lower()
    return OBJECT_ALIASES.get(key, key)


def matches(query: CounterPath, candidate: CounterPath) -> bool:
    """Whether ``candidate`` (a concrete path) is selected by ``query`` (may hold ``*``)."""
    if not _pattern(_object_key(query.object)).match(_object_key(candidate.object)):
        return False
    if (query.instance is None) != (candidate.instance is None):
        return False
    if query.instance is not None and not _pattern(query.instance).match(candidate.instance or ""):
        return False
    return bool(_pattern(query.counter).match(candidate.counter))


def select(queries: Iterable[str], available: Iterable[str]) -> list[str]:
    """The available paths selected by any of ``queries``, in ``available``'s order.

    No query selects everything. A query that selects nothing raises :class:`NotFound`
    naming it (like Get-Counter's "The specified object was not found").
    """
    parsed_available = [(text, parse(text)) for text in available]
    query_list = [parse(q) for q in queries]
    if not query_list:
        return [text for text, _ in parsed_available]
    chosen: set[str] = set()
    for query in query_list:
        hits = {text for text, cand in parsed_available if matches(query, cand)}
        if not hits:
            raise NotFound(f"no counter matches {query}; see 'viridian counters list'",
                           path=str(query))
        chosen |= hits
    return [text for text, _ in parsed_available if text in chosen]
