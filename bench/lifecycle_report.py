"""Pure summary of the lifecycle benchmark: medians, the side-by-side table, the targets.

Targets (issue 2, "Benchmark"): viridian's overhead over bare QEMU at most
:data:`OVERHEAD_TARGET_MS` per operation, and every viridian operation at most libvirt's
time. A target that cannot be judged (a stack missing) is shown as ``-``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

BARE, VIRIDIAN, LIBVIRT = "bare QEMU", "viridian", "libvirt"
OVERHEAD_TARGET_MS = 50.0

Samples = Mapping[str, Mapping[str, Sequence[float]]]  # stack → operation → seconds


@dataclass(frozen=True)
class Row:
    """One operation's medians in milliseconds (None: stack not measured) and verdicts."""

    operation: str
    bare_ms: float | None
    viridian_ms: float | None
    libvirt_ms: float | None
    overhead_ms: float | None
    libvirt_ratio: float | None
    overhead_ok: bool | None
    libvirt_ok: bool | None


def median_ms(samples: Sequence[float] | None) -> float | None:
    return statistics.median(samples) * 1000 if samples else None


def make_row(operation: str, samples: Samples) -> Row:
    def median(stack: str) -> float | None:
        return median_ms(samples.get(stack, {}).get(operation))

    bare, viridian, libvirt = median(BARE), median(VIRIDIAN), median(LIBVIRT)
    overhead = viridian - bare if viridian is not None and bare is not None else None
    ratio = viridian / libvirt if viridian is not None and libvirt else None
    return Row(
        operation=operation,
        bare_ms=bare,
        viridian_ms=viridian,
        libvirt_ms=libvirt,
        overhead_ms=overhead,
        libvirt_ratio=ratio,
        overhead_ok=None if overhead is None else overhead <= OVERHEAD_TARGET_MS,
        libvirt_ok=None if viridian is None or libvirt is None else viridian <= libvirt,
    )


def make_rows(operations: Iterable[str], samples: Samples) -> list[Row]:
    return [make_row(operation, samples) for operation in operations]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("ok" if ok else "MISS")


HEADER = (
    "operation",
    "bare QEMU ms",
    "viridian ms",
    "libvirt ms",
    "viridian-bare ms",
    "viridian/libvirt",
    f"<=+{OVERHEAD_TARGET_MS:g}ms",
    "<=libvirt",
)


def table(rows: Sequence[Row]) -> str:
    """A fixed-width text table, one line per operation after a header line."""
    lines = [HEADER] + [
        (
            row.operation,
            _ms(row.bare_ms),
            _ms(row.viridian_ms),
            _ms(row.libvirt_ms),
            _ms(row.overhead_ms),
            _ratio(row.libvirt_ratio),
            _verdict(row.overhead_ok),
            _verdict(row.libvirt_ok),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )


def targets_met(rows: Sequence[Row]) -> dict[str, bool | None]:
    """Both targets over all operations: True, False, or None when nothing was judged."""

    def all_of(verdicts: list[bool | None]) -> bool | None:
        judged = [v for v in verdicts if v is not None]
        return all(judged) if judged else None

    return {
        "overhead_le_50ms": all_of([r.overhead_ok for r in rows]),
        "at_most_libvirt": all_of([r.libvirt_ok for r in rows]),
    }


def document(rows: Sequence[Row], samples: Samples, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The ``--json`` document: facts about the run, every sample, the rows, the targets."""
    return {
        **facts,
        "samples_ms": {
            stack: {op: [round(s * 1000, 3) for s in values] for op, values in ops.items()}
            for stack, ops in samples.items()
        },
        "rows": [asdict(row) for row in rows],
        "targets": {"overhead_target_ms": OVERHEAD_TARGET_MS, **targets_met(rows)},
    }
