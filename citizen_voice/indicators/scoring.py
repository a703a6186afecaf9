"""Composite scores, rankings within peer groups, and 红榜/黑榜, from indicators.indicator_values.

Scheme (scoring.yaml, versioned like the catalogue): per component indicator a weight, a target and
an optional floor; points = weight × min(value ÷ target, cap) (target ÷ value for lower-is-better
indicators), 0 below the floor. Units are ranked within (grain, peer group) by score rounded to two
decimals, highest first; equal scores share a rank and the next rank skips (1, 1, 3), listed by unit
code. Units with fewer than min_orders orders received, or missing a component value, are flagged
and not ranked.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import duckdb
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from citizen_voice.indicators.catalogue import (
    PACKAGE_DIR,
    Catalogue,
    CatalogueError,
    describe_errors,
    read_yaml,
)
from citizen_voice.indicators.engine import GRAINS, SCHEMA, VALUES
from citizen_voice.indicators.periods import Period

DEFAULT_SCORING = PACKAGE_DIR / "scoring.yaml"
SCORES = f"{SCHEMA}.scores"
RANKINGS = f"{SCHEMA}.rankings"
SIZE_INDICATOR = "received"
RED, BLACK = "红榜", "黑榜"


class Component(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    indicator: str
    weight: Annotated[float, Field(gt=0)]
    target: Annotated[float, Field(gt=0)]
    floor: float | None = None
    cap: Annotated[float, Field(ge=1.0)] = 1.0


class Scheme(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Annotated[int, Field(ge=1)]
    effective_from: date
    name: str
    min_orders: Annotated[int, Field(ge=0)]
    list_size: Annotated[int, Field(ge=0)]
    rank_grains: list[str]
    components: list[Component]

    @model_validator(mode="after")
    def _valid(self) -> Scheme:
        unknown = [g for g in self.rank_grains if g not in GRAINS or g == "city"]
        if unknown:
            raise ValueError(f"rank_grains: unknown grains {unknown} (known: {', '.join(g for g in GRAINS if g != 'city')})")
        keys = [c.indicator for c in self.components]
        if not keys or len(set(keys)) != len(keys):
            raise ValueError("components: at least one, each indicator once")
        return self


class Scoring(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schemes: list[Scheme]

    @model_validator(mode="after")
    def _ordered(self) -> Scoring:
        ordered = sorted(self.schemes, key=lambda s: s.version)
        dates = [s.effective_from for s in ordered]
        if not ordered or dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("schemes: versions must take effect one after another, later versions later")
        return self

    def effective(self, day: date) -> Scheme | None:
        candidates = [s for s in self.schemes if s.effective_from <= day]
        return max(candidates, key=lambda s: s.version) if candidates else None


def load_scoring(path: Path | str | None = None, catalogue: Catalogue | None = None) -> Scoring:
    """Load and validate; with a catalogue, check each component names a known indicator with a
    direction."""
    path = Path(path or DEFAULT_SCORING)
    raw = read_yaml(path)
    try:
        scoring = Scoring.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError(describe_errors(exc, raw, path, "schemes", "name")) from exc
    if catalogue is not None:
        for index, scheme in enumerate(scoring.schemes):
            for number, component in enumerate(scheme.components):
                if component.indicator not in catalogue.keys():
                    raise CatalogueError(f"{path}: schemes[{index}] (name: {scheme.name}, version {scheme.version}): "
                                         f"components.{number}.indicator: unknown indicator {component.indicator!r}")
    return scoring


def component_points(component: Component, value: float | None, direction: str) -> tuple[float | None, float, bool]:
    """(ratio to target, points, below floor) of one value."""
    if value is None:
        return None, 0.0, False
    lower_better = direction == "lower_better"
    if lower_better:
        ratio = component.cap if value <= 0 else component.target / value
        below = component.floor is not None and value > component.floor
    else:
        ratio = value / component.target
        below = component.floor is not None and value < component.floor
    points = 0.0 if below else component.weight * min(ratio, component.cap)
    return ratio, points, below


def rank_group(units: list[dict]) -> list[dict]:
    """Competition ranking by score (two decimals), ties share a rank; ties listed by unit code."""
    ranked = sorted((u for u in units if u["is_ranked"]), key=lambda u: (-round(u["score"], 2), u["unit_code"]))
    previous, rank = None, 0
    for position, unit in enumerate(ranked, start=1):
        key = round(unit["score"], 2)
        if key != previous:
            rank, previous = position, key
        unit["rank"] = rank
        unit["ranked_units"] = len(ranked)
    return ranked


def mark_lists(ranked: list[dict], list_size: int) -> None:
    """红榜: rank within the top n; 黑榜: score at or below the n-th lowest; n is list_size, at most a
    third of the ranked units, so a small group is not listed whole."""
    n = min(list_size, len(ranked) // 3)
    if n == 0:
        return
    worst_kept = round(ranked[-n]["score"], 2)
    for unit in ranked:
        if unit["rank"] <= n:
            unit["list"] = RED
        elif round(unit["score"], 2) <= worst_kept:
            unit["list"] = BLACK


def score_period(con: duckdb.DuckDBPyConnection, period: Period, scoring: Scoring) -> dict:
    """Scores and rankings of one month into indicators.scores and indicators.rankings (replacing
    the month's rows). Returns counts."""
    scheme = scoring.effective(period.start)
    ensure_tables(con)
    con.execute(f"delete from {SCORES} where period = ?", [period.label])
    con.execute(f"delete from {RANKINGS} where period = ?", [period.label])
    if scheme is None:
        return {"scheme": None, "units": 0, "ranked": 0}
    keys = [c.indicator for c in scheme.components]
    rows = con.execute(f"""
        select grain, unit_code, unit_name, peer_group, indicator_key, indicator_name, value, direction
        from {VALUES} where period_type = 'month' and period = ? and grain in (select unnest(?))
          and indicator_key in (select unnest(?))""",
                       [period.label, scheme.rank_grains, [*keys, SIZE_INDICATOR]]).fetchall()
    units: dict[tuple[str, str], dict] = {}
    for grain, unit_code, unit_name, peer_group, key, name, value, direction in rows:
        unit = units.setdefault((grain, unit_code), {"grain": grain, "unit_code": unit_code, "unit_name": unit_name,
                                                     "peer_group": peer_group or grain, "values": {}})
        unit["values"][key] = (name, value, direction)
    computed_at = datetime.now().replace(microsecond=0)
    score_rows, ranking_rows = [], []
    for unit in units.values():
        received = int(unit["values"].get(SIZE_INDICATOR, (None, 0, None))[1] or 0)
        unit.update(received=received, score=0.0, rank=None, ranked_units=None, list=None)
        losses, missing = [], []
        for component in scheme.components:
            name, value, direction = unit["values"].get(component.indicator, (component.indicator, None, "higher_better"))
            ratio, points, below = component_points(component, value, direction)
            if value is None:
                missing.append(name)
            unit["score"] += points
            lost = component.weight - points
            if lost >= 0.05 and value is not None:  # shown to one decimal
                losses.append((lost, f"{name} {value * 100:.2f}%（目标 {component.target * 100:.0f}%"
                                     + ("，低于门槛 0 分" if below else "") + f"，失 {lost:.1f} 分）"))
            score_rows.append((period.label, unit["grain"], unit["peer_group"], unit["unit_code"], unit["unit_name"],
                               component.indicator, name, value, component.target, component.floor,
                               component.weight, ratio, points, lost if value is not None else None, below,
                               scheme.version, computed_at))
        flags = []
        if received < scheme.min_orders:
            flags.append(f"受理量 {received} < {scheme.min_orders}")
        if missing:
            flags.append("无数据: " + "、".join(missing))
        unit["is_ranked"] = not flags
        unit["flag"] = "；".join(flags) or None
        unit["pulled_down_by"] = "；".join(text for _, text in sorted(losses, reverse=True)[:3]) or None
    groups: dict[tuple[str, str], list[dict]] = {}
    for unit in units.values():
        groups.setdefault((unit["grain"], unit["peer_group"]), []).append(unit)
    for group in groups.values():
        mark_lists(rank_group(group), scheme.list_size)
    max_score = sum(c.weight for c in scheme.components)
    for unit in sorted(units.values(), key=lambda u: (u["grain"], u["peer_group"], u["rank"] or 10**6, u["unit_code"])):
        ranking_rows.append((period.label, unit["grain"], unit["peer_group"], unit["unit_code"], unit["unit_name"],
                             unit["received"], round(unit["score"], 4), max_score, unit["is_ranked"], unit["rank"],
                             unit["ranked_units"], unit["flag"], unit["list"], unit["pulled_down_by"],
                             scheme.version, computed_at))
    _insert(con, SCORES, score_rows)
    _insert(con, RANKINGS, ranking_rows)
    return {"scheme": scheme.version, "units": len(units), "ranked": sum(u["is_ranked"] for u in units.values())}


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> None:
    """Bulk insert through Arrow (executemany costs a round trip per row)."""
    if not rows:
        return
    import pyarrow as pa

    names = [r[0] for r in con.execute(f"describe {table}").fetchall()]
    batch = pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in rows])  # noqa: F841 - read by SQL
    con.execute(f"insert into {table} by name select * from batch")


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(f"""create table if not exists {SCORES} (
        period varchar, grain varchar, peer_group varchar, unit_code varchar, unit_name varchar,
        indicator_key varchar, indicator_name varchar, value double, target double, floor double,
        weight double, ratio_to_target double, points double, lost_points double, below_floor boolean,
        scoring_version integer, computed_at timestamp)""")
    con.execute(f"""create table if not exists {RANKINGS} (
        period varchar, grain varchar, peer_group varchar, unit_code varchar, unit_name varchar,
        received bigint, score double, max_score double, is_ranked boolean, rank integer, ranked_units integer,
        flag varchar, list varchar, pulled_down_by varchar, scoring_version integer, computed_at timestamp)""")
