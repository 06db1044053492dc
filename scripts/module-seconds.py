"""Write tests/module_seconds.json from a JUnit XML report (``pytest --junitxml=F``).

The table holds each test module's total seconds (setup + call + teardown of its tests) in
the run that wrote the report. tests/conftest.py orders modules longest first with it, so
``pytest -n 2 --dist loadfile`` does not end with one worker alone on a long module.

Usage: .venv/bin/python scripts/module-seconds.py report.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "tests" / "module_seconds.json"


def module_of(classname: str) -> str:
    """``tests.a.test_b`` or ``tests.a.test_b.TestClass`` → ``tests/a/test_b.py``."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        module = "/".join(parts[:end]) + ".py"
        if (REPO / module).is_file():
            return module
    return "/".join(parts) + ".py"


def module_seconds(report: Path) -> dict[str, int]:
    seconds: Counter[str] = Counter()
    for case in ET.parse(report).iter("testcase"):
        seconds[module_of(case.get("classname", ""))] += float(case.get("time", 0))
    return {module: round(total) for module, total in sorted(seconds.items())}


if __name__ == "__main__":
    TABLE.write_text(json.dumps(module_seconds(Path(sys.argv[1])), indent=0) + "\n")
