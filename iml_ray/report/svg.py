"""Inline SVG charts for the HTML reports: bars, lines, scatter, a heatmap, a timeline. No scripts, no requests."""
from __future__ import annotations

import html
from typing import Any

PALETTE = ["#0969da", "#1a7f37", "#bf8700", "#8250df", "#cf222e", "#1b7c83", "#9a6700"]


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def bar_chart(items: list[tuple[str, float]], *, width: int = 460, unit: str = "", title: str = "",
              colour: str = PALETTE[0], fmt: str = "{:.3g}") -> str:
    """Horizontal bars, one per (label, value)."""
    if not items:
        return "<p class='muted'>nothing to show</p>"
    row, label_w = 20, 170
    height = row * len(items) + 24
    top = max(max(v for _, v in items), 1e-12)
    parts = [f"<svg role='img' aria-label='{esc(title)}' width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>"]
    for i, (label, value) in enumerate(items):
        y = 18 + i * row
        length = max(0.0, value) / top * (width - label_w - 70)
        parts.append(f"<text x='{label_w - 6}' y='{y + 11}' text-anchor='end' font-size='11'>{esc(label[:28])}</text>"
                     f"<rect x='{label_w}' y='{y}' width='{length:.1f}' height='{row - 6}' fill='{colour}'/>"
                     f"<text x='{label_w + length + 4:.1f}' y='{y + 11}' font-size='11'>"
                     f"{esc(fmt.format(value))}{esc(unit)}</text>")
    parts.append(f"<text x='0' y='11' font-size='12' font-weight='600'>{esc(title)}</text></svg>")
    return "".join(parts)


def line_chart(points: list[tuple[float, float]], *, title: str, x_label: str, y_label: str, size: int = 300,
               diagonal: bool = False) -> str:
    pad = 36
    inner = size - 2 * pad

    def xy(x: float, y: float) -> str:
        return f"{pad + x * inner:.1f},{size - pad - y * inner:.1f}"

    path = " ".join(xy(x, y) for x, y in points)
    extra = f"<line x1='{pad}' y1='{size - pad}' x2='{size - pad}' y2='{pad}' stroke='#8c959f' stroke-dasharray='4'/>" \
        if diagonal else ""
    return (f"<svg role='img' aria-label='{esc(title)}' width='{size}' height='{size}' xmlns='http://www.w3.org/2000/svg'>"
            f"<rect x='{pad}' y='{pad}' width='{inner}' height='{inner}' fill='none' stroke='#d0d7de'/>{extra}"
            f"<polyline points='{path}' fill='none' stroke='{PALETTE[0]}' stroke-width='2'/>"
            f"<text x='{size / 2}' y='{size - 8}' text-anchor='middle' font-size='11'>{esc(x_label)}</text>"
            f"<text x='10' y='{size / 2}' font-size='11' transform='rotate(-90 10 {size / 2})' text-anchor='middle'>"
            f"{esc(y_label)}</text><text x='{pad}' y='20' font-size='12' font-weight='600'>{esc(title)}</text></svg>")


def scatter(points: list[tuple[float, float]], *, title: str, x_label: str, y_label: str, size: int = 300) -> str:
    pad = 40
    inner = size - 2 * pad
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    span = max(abs(min(ys)), abs(max(ys)), 1e-12)
    dots = "".join(f"<circle cx='{pad + (x - x0) / max(x1 - x0, 1e-12) * inner:.1f}' "
                   f"cy='{pad + inner / 2 - y / span * inner / 2:.1f}' r='2' fill='{PALETTE[0]}' fill-opacity='0.6'/>"
                   for x, y in points[:2000])
    return (f"<svg role='img' aria-label='{esc(title)}' width='{size}' height='{size}' xmlns='http://www.w3.org/2000/svg'>"
            f"<rect x='{pad}' y='{pad}' width='{inner}' height='{inner}' fill='none' stroke='#d0d7de'/>"
            f"<line x1='{pad}' x2='{pad + inner}' y1='{pad + inner / 2}' y2='{pad + inner / 2}' stroke='#8c959f'/>{dots}"
            f"<text x='{size / 2}' y='{size - 8}' text-anchor='middle' font-size='11'>{esc(x_label)}</text>"
            f"<text x='12' y='{size / 2}' font-size='11' transform='rotate(-90 12 {size / 2})' text-anchor='middle'>"
            f"{esc(y_label)}</text><text x='{pad}' y='20' font-size='12' font-weight='600'>{esc(title)}</text></svg>")


def heatmap(matrix: list[list[int]], labels: list[str], *, title: str, cell: int = 44) -> str:
    n = len(labels)
    pad = 90
    size = max(pad + n * cell + 10, 260)
    top = max(max(r) for r in matrix) or 1
    parts = [f"<svg role='img' aria-label='{esc(title)}' width='{size}' height='{size}' xmlns='http://www.w3.org/2000/svg'>"
             f"<text x='0' y='14' font-size='12' font-weight='600'>{esc(title)}</text>"]
    for i in range(n):
        parts.append(f"<text x='{pad - 4}' y='{pad + i * cell + cell / 2 + 4}' text-anchor='end' font-size='11'>"
                     f"{esc(labels[i][:12])}</text>")
        parts.append(f"<text x='{pad + i * cell + cell / 2}' y='{pad - 6}' text-anchor='middle' font-size='11'>"
                     f"{esc(labels[i][:6])}</text>")
        for j in range(n):
            shade = 0.1 + 0.9 * matrix[i][j] / top
            parts.append(f"<rect x='{pad + j * cell}' y='{pad + i * cell}' width='{cell - 2}' height='{cell - 2}' "
                         f"fill='{PALETTE[0]}' fill-opacity='{shade:.2f}'/><text x='{pad + j * cell + cell / 2}' "
                         f"y='{pad + i * cell + cell / 2 + 4}' text-anchor='middle' font-size='11'>{matrix[i][j]}</text>")
    parts.append(f"<text x='{pad}' y='{pad - 22}' font-size='10' class='muted'>predicted →</text>"
                 f"<text x='4' y='{pad + 10}' font-size='10'>true ↓</text></svg>")
    return "".join(parts)


def timeline(spans: list[tuple[str, float, float, list]], *, width: int = 900) -> str:
    """Rows of (name, start_s, end_s, marks) on one time axis; a mark is a time, or (time, its tooltip)."""
    if not spans:
        return "<p class='muted'>no timings recorded</p>"
    total = max(end for _, _, end, _ in spans) or 1.0
    label_w, row = 150, 22
    scale = (width - label_w - 20) / total
    height = row * len(spans) + 40
    parts = [f"<svg role='img' aria-label='timeline' width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>"]
    for i, (name, start, end, marks) in enumerate(spans):
        y = 8 + i * row
        parts.append(f"<text x='{label_w - 6}' y='{y + 13}' text-anchor='end' font-size='11'>{esc(name)}</text>"
                     f"<rect x='{label_w + start * scale:.1f}' y='{y}' width='{max(2.0, (end - start) * scale):.1f}' "
                     f"height='{row - 6}' fill='{PALETTE[i % len(PALETTE)]}'>"
                     f"<title>{esc(name)}: {end - start:.1f} s</title></rect>")
        for mark in marks:
            at, tip = mark if isinstance(mark, tuple) else (mark, "")
            x = label_w + at * scale
            title = f"<title>{esc(tip)}</title>" if tip else ""
            parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y - 2}' y2='{y + row - 4}' stroke='#1b1f24' "
                         f"stroke-width='2'>{title}</line>")
    axis_y = 8 + len(spans) * row + 6
    for k in range(6):
        t = total * k / 5
        x = label_w + t * scale
        parts.append(f"<text x='{x:.1f}' y='{axis_y + 12}' font-size='10' text-anchor='middle'>{t:.0f}s</text>")
    parts.append("</svg>")
    return "".join(parts)
