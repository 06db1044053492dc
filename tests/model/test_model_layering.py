"""The model is the bottom layer: it imports nothing of viridian but ``viridian.errors``."""

from __future__ import annotations

import ast
from pathlib import Path

import viridian.model

MODEL = Path(viridian.model.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_model_imports_only_errors_and_itself() -> None:
    bad = {
        f"{path.name}: {name}"
        for path in MODEL.glob("*.py")
        for name in imported_modules(path)
        if name.startswith("viridian")
        and name != "viridian.errors"
        and not name.startswith("viridian.model")
    }
    assert not bad, sorted(bad)


def test_model_does_no_io() -> None:
    io_modules = {"os", "subprocess", "socket", "pathlib", "shutil", "sqlite3", "io"}
    used = {
        f"{path.name}: {name}"
        for path in MODEL.glob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in io_modules
    }
    assert not used, sorted(used)
