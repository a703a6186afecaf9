"""Inline SVG charts for the bulletin: no scripts, no external files, Chinese labels as text (the
reader's fonts render them; the PDF uses Noto CJK). Each function returns an SVG string."""

from __future__ import annotations

from html import escape

PALETTE = ("#c0392b", "#2471a3", "#229954", "#d68910", "#7d3c98", "#17a589", "#839192", "#a04000")
FONT = 'font-family="Noto Sans CJK SC, Source Han Sans SC, Microsoft YaHei, PingFang SC, sans-serif"'


def bars(items: list[tuple[str, float, str]], title: str, max_value: float | None = None, width: int = 680,
         label_width: int = 150) -> str:
    """Horizontal bars: (label, value, text shown at the bar's end)."""
    top = max_value or max((v for _, v, _ in items), default=0) or 1
    row, span = 28, width - label_width - 90
    height = row * len(items) + 10
    parts = [f'<svg role="img" aria-label="{escape(title)}" data-chart="bars" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" {FONT}>']
    for i, (label, value, text) in enumerate(items):
        y = row * i
        length = max(0.0, value) / top * span
        parts.append(f'<text x="0" y="{y + 20}" font-size="13">{escape(label)}</text>')
        parts.append(f'<rect x="{label_width}" y="{y + 7}" width="{length:.1f}" height="17" fill="{PALETTE[0]}"/>')
        parts.append(f'<text x="{label_width + length + 6:.1f}" y="{y + 20}" font-size="12">{escape(text)}</text>')
    parts.append("</svg>")
    return _figure(title, "".join(parts))


def line(points: list[tuple[str, float, str]], title: str, width: int = 680, height: int = 220) -> str:
    """A trend line over periods: (period label, value, text)."""
    if not points:
        return ""
    left, right, top, bottom = 50, 20, 20, 40
    values = [v for _, v, _ in points]
    low, high = 0.0, max(values) or 1.0
    step = (width - left - right) / max(1, len(points) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + i * step, top + (1 - (v - low) / (high - low)) * (height - top - bottom)

    coords = [xy(i, v) for i, (_, v, _) in enumerate(points)]
    parts = [f'<svg role="img" aria-label="{escape(title)}" data-chart="line" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" {FONT}>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#999"/>',
             '<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>'.format(
                 PALETTE[1], " ".join(f"{x:.1f},{y:.1f}" for x, y in coords))]
    for (label, _, text), (x, y) in zip(points, coords, strict=True):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{PALETTE[1]}"/>')
        parts.append(f'<text x="{x:.1f}" y="{y - 8:.1f}" font-size="11" text-anchor="middle">{escape(text)}</text>')
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 18}" font-size="11" text-anchor="middle">'
                     f'{escape(label)}</text>')
    parts.append("</svg>")
    return _figure(title, "".join(parts))


def shares(items: list[tuple[str, float]], title: str, width: int = 680) -> str:
    """One stacked bar of shares with a legend: (label, count)."""
    total = sum(v for _, v in items) or 1
    legend_rows = (len(items) + 3) // 4
    height = 40 + 22 * legend_rows
    parts = [f'<svg role="img" aria-label="{escape(title)}" data-chart="shares" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" {FONT}>']
    x = 0.0
    for i, (_, value) in enumerate(items):
        w = value / total * width
        parts.append(f'<rect x="{x:.1f}" y="4" width="{w:.1f}" height="24" fill="{PALETTE[i % len(PALETTE)]}"/>')
        x += w
    for i, (label, value) in enumerate(items):
        lx, ly = (i % 4) * (width / 4), 48 + (i // 4) * 22
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 11}" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{lx + 16:.1f}" y="{ly}" font-size="12">{escape(label)} '
                     f'{value / total * 100:.1f}%</text>')
    parts.append("</svg>")
    return _figure(title, "".join(parts))


def _figure(title: str, svg: str) -> str:
    return f'<figure class="chart"><figcaption>{escape(title)}</figcaption>{svg}</figure>'
