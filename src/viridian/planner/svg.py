"""Horizontal bar charts as inline SVG (no scripts, no external assets).

A chart is a list of :class:`Group` (a label and its bars); a :class:`Bar` is one or
more stacked :class:`Segment`. Optional reference lines (e.g. 100 %) and a per-group
marker (e.g. the drive bays) are drawn across the bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = ["Bar", "Group", "RefLine", "Segment", "bar_chart"]

WIDTH = 960
LABEL_W = 200
RIGHT_W = 150
BAR_H = 16
BAR_GAP = 4
GROUP_GAP = 14
TOP = 50
BOTTOM = 40


@dataclass(frozen=True)
class Segment:
    series: str
    value: float
    color: str


@dataclass(frozen=True)
class Bar:
    label: str
    segments: tuple[Segment, ...]
    text: str  # shown right of the bar
    faded: bool = False

    @property
    def total(self) -> float:
        return sum(segment.value for segment in self.segments)


@dataclass(frozen=True)
class Group:
    label: str
    bars: tuple[Bar, ...]
    marker: tuple[float, str] | None = None  # (value, label) drawn across the group


@dataclass(frozen=True)
class RefLine:
    value: float
    label: str
    color: str = "#b91c1c"


@dataclass(frozen=True)
class _Frame:
    scale_max: float
    plot_w: float = field(default=WIDTH - LABEL_W - RIGHT_W)

    def x(self, value: float) -> float:
        return LABEL_W + self.plot_w * min(max(value, 0.0), self.scale_max) / self.scale_max


def bar_chart(
    title: str,
    groups: Sequence[Group],
    ref_lines: Sequence[RefLine] = (),
    minimum: float = 0.0,
    cap: float = float("inf"),
) -> str:
    """An ``<svg>`` element; the scale runs from 0 to the largest value shown (at least
    ``minimum``, at most ``cap``: longer bars end at the edge, their text tells the value)."""
    values = [bar.total for g in groups for bar in g.bars] + [r.value for r in ref_lines]
    values += [g.marker[0] for g in groups if g.marker]
    frame = _Frame(min(max([minimum, *values, 1e-9]) * 1.05, cap))
    body, y = _groups(groups, frame)
    height = y + BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" role="img" aria-label="{escape(title)}">',
        f'<rect width="{WIDTH}" height="{height:.0f}" fill="#ffffff"/>',
        f'<text x="8" y="20" class="ct">{escape(title)}</text>',
        _legend(groups),
        *body,
        *(_ref_line(ref, frame, height - 12 * i) for i, ref in enumerate(ref_lines)),
        "</svg>",
    ]
    return "\n".join(parts)


def _groups(groups: Sequence[Group], frame: _Frame) -> tuple[list[str], float]:
    parts: list[str] = []
    y = float(TOP)
    for group in groups:
        parts.append(f'<text x="8" y="{y + 12:.0f}" class="gl">{escape(group.label)}</text>')
        y += BAR_H + BAR_GAP
        top = y
        for bar in group.bars:
            parts.append(_bar(bar, frame, y))
            y += BAR_H + BAR_GAP
        if group.marker:
            parts.append(_marker(group.marker, frame, top, y))
        y += GROUP_GAP
        parts.append(
            f'<line x1="8" x2="{WIDTH - 8}" y1="{y - GROUP_GAP / 2:.0f}" '
            f'y2="{y - GROUP_GAP / 2:.0f}" stroke="#e5e7eb"/>'
        )
    return parts, y


def _bar(bar: Bar, frame: _Frame, y: float) -> str:
    parts = [f'<text x="{LABEL_W - 6}" y="{y + 12:.0f}" class="bl">{escape(bar.label)}</text>']
    start = 0.0
    opacity = ' opacity="0.35"' if bar.faded else ""
    for segment in bar.segments:
        x0, x1 = frame.x(start), frame.x(start + segment.value)
        parts.append(
            f'<rect x="{x0:.1f}" y="{y:.0f}" width="{max(x1 - x0, 0.0):.1f}" height="{BAR_H}" '
            f'fill="{segment.color}"{opacity}><title>{escape(segment.series)}: '
            f"{segment.value:,.1f}</title></rect>"
        )
        start += segment.value
    parts.append(
        f'<text x="{frame.x(start) + 6:.1f}" y="{y + 12:.0f}" class="bv">{escape(bar.text)}</text>'
    )
    return "".join(parts)


def _marker(marker: tuple[float, str], frame: _Frame, top: float, bottom: float) -> str:
    x = frame.x(marker[0])
    return (
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 2:.0f}" y2="{bottom:.0f}" stroke="#111827" '
        f'stroke-width="2" stroke-dasharray="4 3"/>'
        f'<text x="{x + 4:.1f}" y="{bottom + 2:.0f}" class="mk">{escape(marker[1])}</text>'
    )


def _ref_line(ref: RefLine, frame: _Frame, label_bottom: float) -> str:
    """A dashed line at ``ref.value`` with its label near ``label_bottom`` (staggered)."""
    x = frame.x(ref.value)
    return (
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP - 6}" y2="{label_bottom - 20:.0f}" '
        f'stroke="{ref.color}" stroke-dasharray="6 4"/>'
        f'<text x="{x:.1f}" y="{label_bottom - 6:.0f}" class="rl" fill="{ref.color}">'
        f"{escape(ref.label)}</text>"
    )


def _legend(groups: Sequence[Group]) -> str:
    seen: dict[str, str] = {}
    for group in groups:
        for bar in group.bars:
            for segment in bar.segments:
                seen.setdefault(segment.series, segment.color)
    parts, x = [], float(LABEL_W)
    for series, color in seen.items():
        parts.append(
            f'<rect x="{x:.0f}" y="27" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14:.0f}" y="36" class="lg">{escape(series)}</text>'
        )
        x += 24 + 7 * len(series)
    return "".join(parts)
