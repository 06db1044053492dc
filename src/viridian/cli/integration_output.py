"""Human views of what the service reports about a running VM beyond its settings:
the resource controls in force and the integration services (``vm list``/``vm show``)."""

from __future__ import annotations

from typing import Any

__all__ = ["runtime_sections"]

Pairs = list[tuple[str, str]]


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def runtime_sections(vm: dict[str, Any]) -> list[tuple[str, Pairs]]:
    """Sections for ``vm show``; none for a service that does not report these blocks."""
    sections: list[tuple[str, Pairs]] = []
    if "integration" in vm:
        sections.append(("Integration Services", _integration(vm["integration"] or {})))
    if vm.get("resources"):
        sections.append(("Resource Control (in force)", _resources(vm["resources"])))
    return sections


def _integration(view: dict[str, Any]) -> Pairs:
    on = [name for name, flag in (view.get("services") or {}).items() if flag]
    off = [name for name, flag in (view.get("services") or {}).items() if not flag]
    guest = view.get("guest") or {}
    osinfo = guest.get("os") or {}
    addresses = [f"{nic.get('name')} {' '.join(nic.get('ip_addresses') or []) or '-'}"
                 for nic in guest.get("network") or []]
    pairs = [
        ("Enabled", ", ".join(on) or "none"),
        ("Disabled", ", ".join(off) or "none"),
        ("Heartbeat", _text(view.get("heartbeat"))),
        ("Guest host name", _text(guest.get("host_name"))),
        ("Guest OS", _text(osinfo.get("pretty-name") or osinfo.get("name"))),
        ("Guest addresses", "; ".join(addresses) or "-"),
    ]
    pairs += [(f"Host KVP {k}", v) for k, v in sorted((view.get("host_kvp") or {}).items())]
    return pairs


def _resources(res: dict[str, Any]) -> Pairs:
    limit = res.get("cpu_limit_processors")
    memory = res.get("memory_limit_bytes")
    weight = res.get("cpu_shares") if res.get("cpu_shares") is not None else res.get("cpu_weight")
    return [
        ("Enforced", "yes" if res.get("enforced") else f"no ({_text(res.get('error'))})"),
        ("Cgroups", ", ".join(f"{k}: {v}" for k, v in (res.get("cgroups") or {}).items()) or "-"),
        ("Processor set", _text(res.get("processor_set"))),
        ("CPU limit", f"{limit} logical processors" if limit else "none"),
        ("CPU weight (shares)", _text(weight)),
        ("Share when all busy", _text(res.get("cpu_fraction_when_all_busy"))),
        ("Reserved processors", _text(res.get("reserved_processors"))),
        ("Memory bound (MB)", _text(memory // 2**20 if memory else None)),
    ]
