"""Render the monthly 市民之声 bulletin as one self-contained HTML file (inline SVG charts, no
external assets), so it opens offline; the reader's browser renders the Chinese text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
from jinja2 import Environment, PackageLoader, select_autoescape

from citizen_voice.indicators import district_monthly

CITY_NAME = "海滨市"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str


def previous_period(period: str) -> str:
    year, month = map(int, period.split("-"))
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def _bars(rows: list[dict], field: str, fmt: str) -> list[Bar]:
    return [Bar(r["district_name"], float(r[field] or 0), fmt.format(r[field] or 0)) for r in rows]


def bulletin_context(con: duckdb.DuckDBPyConnection, period: str) -> dict:
    rows = district_monthly.read(con, period)
    if not rows:
        raise ValueError(f"no indicator rows for period {period}: has the pipeline run for it?")
    city = next(r for r in rows if r["grain"] == "city")
    districts = [r for r in rows if r["grain"] == "district"]
    previous = [r for r in district_monthly.read(con, previous_period(period)) if r["grain"] == "city"]
    trend = [r for r in district_monthly.read(con) if r["grain"] == "city"]
    change = None
    if previous and previous[0]["received"]:
        change = (city["received"] - previous[0]["received"]) / previous[0]["received"]
    return {
        "city_name": CITY_NAME,
        "period": period,
        "period_label": f"{period[:4]}年{int(period[5:])}月",
        "city": city,
        "districts": districts,
        "received_change": change,
        "received_bars": _bars(districts, "received", "{:,}"),
        "on_time_bars": [Bar(r["district_name"], float(r["on_time_close_rate"] or 0),
                             f"{(r['on_time_close_rate'] or 0) * 100:.2f}%") for r in districts],
        "trend_bars": [Bar(r["period"], float(r["received"]), f"{r['received']:,}") for r in trend],
        "definition_version": city["definition_version"],
    }


def render_bulletin(con: duckdb.DuckDBPyConnection, period: str, out_dir: Path) -> Path:
    env = Environment(loader=PackageLoader("citizen_voice.bulletin", "templates"),
                      autoescape=select_autoescape(["html"]))
    html = env.get_template("monthly.html").render(**bulletin_context(con, period))
    target = Path(out_dir) / period
    target.mkdir(parents=True, exist_ok=True)
    path = target / "bulletin.html"
    path.write_text(html, encoding="utf-8")
    return path
