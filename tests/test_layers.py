"""The dependency rule of docs/architecture.md ("Layers and the dependency rule"), checked on
the source: which top-level packages of viridian each package imports, and no cycles."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import viridian

ROOT = Path(viridian.__file__).parent

# package -> the packages of ours it may import (besides itself); "*" allows anything.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "config": set(),
    "pinning": set(),
    "model": {"errors"},
    "disks": {"errors"},
    "network": {"errors", "model"},
    "host": {"errors", "model"},
    "checkpoints": {"errors", "model"},
    "planner": {"errors", "model"},
    "qemu": {"errors", "model", "network", "config"},
    "counters": {"errors", "model", "qemu"},
    "bpa": {"errors", "model", "counters"},
    "console": {"errors", "config", "model", "counters"},
    "guestkit": {"errors", "disks", "config"},
    "access": {"errors", "config"},
    "cluster": {"errors", "library"},  # library.placement: the failover rates hosts
    "library": {"errors", "model"},
    "interchange": {"errors", "model", "checkpoints"},
    "redfish": {"errors", "model"},
    "backup": {"errors", "model"},
}


def _package_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[0]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name.split(".")[1] for name in names
            if name.startswith("viridian.") and name.count(".") >= 1}


def _graph() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the files that import it."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in ROOT.rglob("*.py"):
        me = _package_of(path)
        for other in _imports(path) - {me}:
            graph[me][other].add(str(path.relative_to(ROOT)))
    return graph


def test_each_package_imports_only_the_layers_below_it() -> None:
    graph = _graph()
    bad = [f"{pkg} -> {other} ({', '.join(sorted(files))})"
           for pkg, allowed in ALLOWED.items()
           for other, files in graph.get(pkg, {}).items() if other not in allowed]
    assert not bad, bad


def test_the_cli_reaches_the_service_only_to_run_serve() -> None:
    files = _graph().get("cli", {}).get("service", set())
    assert files <= {"cli/main.py"}, files
    main = (ROOT / "cli" / "main.py").read_text(encoding="utf-8")
    top_level = [line for line in main.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in top_level if "viridian.service" in line]


def test_no_import_cycle_between_packages() -> None:
    graph = {pkg: set(edges) for pkg, edges in _graph().items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, set()) - seen:
            if nxt == goal or reaches(nxt, goal, seen | {nxt}):
                return True
        return False

    cycles = sorted(pkg for pkg in graph if reaches(pkg, pkg, set()))
    assert not cycles, cycles
