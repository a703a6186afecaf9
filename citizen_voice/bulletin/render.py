"""Render the 市民之声 bulletin (monthly, or the weekly brief) as one self-contained HTML file — inline
SVG charts, inline styles, no scripts or external files, so it opens offline — and as a PDF printed by
headless Chromium. Sections, their order and wording come from bulletin.yaml; figures from the warehouse."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

import duckdb
import yaml
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, ValidationError

from citizen_voice.bulletin import sections as S

BUILDERS = {"overview": S.overview, "handling": S.handling, "assessment": S.assessment,
            "hot_topics": S.hot_topics, "warnings": S.warnings, "data_quality": S.data_quality, "cases": S.cases}
KIND_LABELS = {"monthly": "月报", "weekly": "周报"}


class SectionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    title: str
    intro: str = ""
    empty: str | None = None


class BulletinConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city_name: str
    title: str
    issuer: str
    footer: str
    top_n: int = 10
    cases: int = 3
    monthly: list[SectionSpec]
    weekly: list[SectionSpec]


def load_config(path: Path | None = None) -> BulletinConfig:
    source = Path(path) if path else files("citizen_voice.bulletin").joinpath("bulletin.yaml")
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    try:
        config = BulletinConfig.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{source}: {exc}") from None
    for kind in ("monthly", "weekly"):
        unknown = [s.key for s in getattr(config, kind) if s.key not in BUILDERS]
        if unknown:
            raise ValueError(f"{source}: {kind}: unknown sections {unknown}; known: {', '.join(BUILDERS)}")
    return config


def build_sections(con: duckdb.DuckDBPyConnection, period: S.BulletinPeriod, config: BulletinConfig) -> list:
    settings = config.model_dump()
    return [BUILDERS[spec.key](con, period, settings, spec.model_dump())
            for spec in getattr(config, period.kind)]


def render_html(con: duckdb.DuckDBPyConnection, period_key: str, config: BulletinConfig | None = None
                ) -> tuple[str, list]:
    config = config or load_config()
    period = S.BulletinPeriod.parse(period_key)
    built = build_sections(con, period, config)
    env = Environment(loader=PackageLoader("citizen_voice.bulletin", "templates"),
                      autoescape=select_autoescape(["html"]))
    title = config.title.format(city_name=config.city_name, kind_label=KIND_LABELS[period.kind])
    html = env.get_template("bulletin.html").render(
        title=title, period=period, config=config, sections=built,
        generated_at=datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M"))
    return html, built


def render_bulletin(con: duckdb.DuckDBPyConnection, period_key: str, out_dir: Path, pdf: bool = True) -> Path:
    """Write <out_dir>/<period>/bulletin.html (and bulletin.pdf); returns the HTML path."""
    html, _ = render_html(con, period_key)
    target = Path(out_dir) / period_key
    target.mkdir(parents=True, exist_ok=True)
    path = target / "bulletin.html"
    path.write_text(html, encoding="utf-8")
    if pdf:
        from citizen_voice.bulletin.browser import print_pdf

        print_pdf(path, target / "bulletin.pdf")
    return path


def publish_bulletin(con: duckdb.DuckDBPyConnection, period_key: str, out_dir: Path) -> dict:
    """Render the HTML, run the privacy gate on it (a hit raises and nothing is printed), then print the
    PDF from the gated HTML. Returns the paths and the gate's figures."""
    from citizen_voice.bulletin.browser import print_pdf
    from citizen_voice.publish import gate

    html = render_bulletin(con, period_key, out_dir, pdf=False)
    report = gate.gate_files([html])
    pdf = print_pdf(html, html.with_suffix(".pdf"))
    return {"period": period_key, "html": html, "pdf": pdf, **report.as_metadata()}
