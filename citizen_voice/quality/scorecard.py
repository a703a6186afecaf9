"""The data-quality scorecard: scores per reporting unit (the department that owns a source system)
per day and per month, and the ranked table as provincial platforms publish it.

Dimension values (shares in 0..1) per unit and day, from the quality tables and the load log:
  completeness / validity / consistency
      1 - (records failing any expectation of that dimension, critical or warning) / records received
  timeliness
      share of the unit's own reported lifecycle steps (签收, 退单, 延期申请, 回复, 办结 …) recorded
      within `limit_hours` of happening (the hotline's event log, staging.stg_hotline__events); the
      hotline centre is scored on its own steps
  interface_stability
      1 - problems / delivery units; units are the days a source delivered records plus its loads,
      problems are unreadable files or pages, loads whose counts do not reconcile, and retries
      (weighted by `retry_weight`, when the load log records them)
The rubric (weights, floors, targets, grades) is configuration: expectations/scorecard.yaml.
Monthly figures are recomputed from the month's numerators and denominators, not averaged.

Written: quality.scorecard_daily, quality.scorecard_monthly, quality.scorecard_ranking.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from citizen_voice.warehouse import has_table

RUBRIC_PATH = Path(__file__).resolve().parents[2] / "expectations" / "scorecard.yaml"
DIMENSIONS = ("completeness", "validity", "timeliness", "consistency", "interface_stability")
DEPARTMENT_STEPS = ("sign", "return", "extend_request", "reply", "close")
HOTLINE_UNIT = "12345"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DimensionRule(Strict):
    name: str
    weight: float = Field(ge=0)
    floor: float = Field(ge=0, le=1)
    target: float = Field(gt=0, le=1)
    description: str = ""
    limit_hours: float | None = Field(default=None, gt=0)
    retry_weight: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _floor_below_target(self):
        if self.floor >= self.target:
            raise ValueError(f"floor {self.floor} must be below target {self.target}")
        return self

    def points(self, value: float | None) -> float | None:
        if value is None or pd.isna(value):
            return None
        return round(100 * min(1.0, max(0.0, (value - self.floor) / (self.target - self.floor))), 2)


class Grade(Strict):
    name: str
    min_score: float = Field(ge=0, le=100)


class Rubric(Strict):
    version: int
    effective_from: date
    dimensions: dict[str, DimensionRule]
    grades: list[Grade]
    min_records_to_rank: int = Field(default=0, ge=0)
    unit_names: dict[str, str] = {}

    @model_validator(mode="after")
    def _complete(self):
        missing = set(DIMENSIONS) - set(self.dimensions)
        unknown = set(self.dimensions) - set(DIMENSIONS)
        if missing or unknown:
            raise ValueError(f"dimensions must be exactly {', '.join(DIMENSIONS)} "
                             f"(missing: {sorted(missing)}, unknown: {sorted(unknown)})")
        if self.dimensions["timeliness"].limit_hours is None:
            raise ValueError("timeliness needs limit_hours")
        if not self.grades or min(g.min_score for g in self.grades) != 0:
            raise ValueError("grades must include one with min_score 0")
        if sum(d.weight for d in self.dimensions.values()) <= 0:
            raise ValueError("the weights must not all be 0")
        return self

    def grade(self, score: float | None) -> str | None:
        if score is None or pd.isna(score):
            return None
        return next(g.name for g in sorted(self.grades, key=lambda g: -g.min_score) if score >= g.min_score)

    def composite(self, values: dict[str, float | None]) -> float | None:
        scored = [(rule.weight, rule.points(values.get(name))) for name, rule in self.dimensions.items()]
        scored = [(w, p) for w, p in scored if p is not None]
        total = sum(w for w, _ in scored)
        return round(sum(w * p for w, p in scored) / total, 2) if total else None


def load_rubric(path: Path | None = None) -> Rubric:
    path = Path(path or RUBRIC_PATH)
    try:
        return Rubric.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as error:
        raise ValueError(f"{path}: invalid scorecard rubric:\n{error}") from error


def _units(con, registry) -> pd.DataFrame:
    names = dict(con.execute("select department_code, department_name from reference.ref_departments").fetchall())
    rows = [{"source": e.name, "kind": e.kind, "unit_code": e.department} for e in registry.sources]
    frame = pd.DataFrame(rows)
    frame["unit_name"] = frame["unit_code"].map(lambda c: names.get(c))
    return frame


def daily_values(con, rubric: Rubric, registry) -> pd.DataFrame:
    """Numerators and denominators per unit and day (plain DuckDB SQL over the quality tables)."""
    units = _units(con, registry)
    con.register("source_units", units)
    limit_seconds = rubric.dimensions["timeliness"].limit_hours * 3600
    retry_weight = rubric.dimensions["interface_stability"].retry_weight or 0.0
    steps = ", ".join(f"'{s}'" for s in DEPARTMENT_STEPS)
    load_log = has_table(con, "ops", "load_log")
    loads_sql = f"""
        select units.unit_code, cast(timezone('Asia/Shanghai', log.started_at) as date) as day,
               count(*) as loads,
               sum(case when log.reconciles then 0 else 1 end)
                 + {retry_weight} * sum(coalesce(try_cast(json_extract(log.counts, '$.retries') as double), 0))
                 as load_problems
        from ops.load_log as log join source_units as units on units.source = log.source
        group by all""" if load_log else \
        "select null::varchar as unit_code, null::date as day, 0 as loads, 0.0 as load_problems where false"
    frame = con.execute(f"""
        with failures as (
            select source, table_name, record_key, record_day, dimension from quality.quarantine
            union all
            select source, table_name, record_key, record_day, dimension from quality.warnings
        ),
        failing as (
            select units.unit_code, failures.record_day as day,
                   count(distinct case when dimension = 'completeness' then failures.source || '|' || table_name || '|' || record_key end) as incomplete,
                   count(distinct case when dimension = 'validity' then failures.source || '|' || table_name || '|' || record_key end) as invalid,
                   count(distinct case when dimension = 'consistency' then failures.source || '|' || table_name || '|' || record_key end) as inconsistent,
                   count(distinct case when dimension = 'interface_stability' then failures.source || '|' || table_name || '|' || record_key end) as unreadable_units
            from failures join source_units as units on units.source = failures.source
            group by all
        ),
        received as (
            select units.unit_code, counts.record_day as day, sum(counts.received) as received,
                   sum(counts.quarantined) as quarantined, count(distinct counts.source) as delivering_sources
            from quality.record_counts as counts join source_units as units on units.source = counts.source
            group by all
        ),
        steps as (
            select coalesce(dept_code, '{HOTLINE_UNIT}') as unit_code, cast(occurred_at as date) as day,
                   count(*) as reported_steps,
                   count(*) filter (where epoch(recorded_at) - epoch(occurred_at) <= {limit_seconds}) as timely_steps
            from staging.stg_hotline__events
            where (dept_code is null or event_type in ({steps})) and occurred_at is not null
              and recorded_at is not null
            group by all
        ),
        loads as ({loads_sql}),
        keys as (
            select unit_code, day from received union select unit_code, day from steps
            where unit_code in (select unit_code from source_units)
        )
        select keys.unit_code, keys.day,
               coalesce(received.received, 0) as received, coalesce(received.quarantined, 0) as quarantined,
               coalesce(failing.incomplete, 0) as incomplete, coalesce(failing.invalid, 0) as invalid,
               coalesce(failing.inconsistent, 0) as inconsistent,
               coalesce(steps.reported_steps, 0) as reported_steps, coalesce(steps.timely_steps, 0) as timely_steps,
               coalesce(received.delivering_sources, 0) + coalesce(loads.loads, 0) as delivery_units,
               coalesce(failing.unreadable_units, 0) + coalesce(loads.load_problems, 0) as delivery_problems
        from keys
        left join received using (unit_code, day)
        left join failing using (unit_code, day)
        left join steps using (unit_code, day)
        left join loads using (unit_code, day)
        order by keys.unit_code, keys.day""").df()
    con.unregister("source_units")
    names = {code: name for code, name in zip(units["unit_code"], units["unit_name"], strict=True)
             if isinstance(name, str)}
    frame["unit_name"] = frame["unit_code"].map(lambda c: names.get(c) or rubric.unit_names.get(c) or c)
    return frame


def _shares(frame: pd.DataFrame) -> pd.DataFrame:
    def share(bad, total):
        return (1 - frame[bad] / frame[total]).where(frame[total] > 0)

    out = frame.copy()
    out["completeness"] = share("incomplete", "received")
    out["validity"] = share("invalid", "received")
    out["consistency"] = share("inconsistent", "received")
    out["timeliness"] = (frame["timely_steps"] / frame["reported_steps"]).where(frame["reported_steps"] > 0)
    out["interface_stability"] = (1 - frame["delivery_problems"] / frame["delivery_units"]).clip(lower=0) \
        .where(frame["delivery_units"] > 0)
    return out


def _scored(frame: pd.DataFrame, rubric: Rubric) -> pd.DataFrame:
    out = _shares(frame)
    for name, rule in rubric.dimensions.items():
        out[f"{name}_points"] = out[name].map(rule.points)
    out["score"] = [rubric.composite({d: row[d] for d in DIMENSIONS}) for _, row in out.iterrows()]
    out["grade"] = out["score"].map(rubric.grade)
    out["rubric_version"] = rubric.version
    return out


SUMMED = ("received", "quarantined", "incomplete", "invalid", "inconsistent", "reported_steps", "timely_steps",
          "delivery_units", "delivery_problems")


def compute(con, rubric: Rubric | None = None, registry=None) -> dict[str, pd.DataFrame]:
    from ingestion.registry import load_registry

    rubric = rubric or load_rubric()
    registry = registry or load_registry()
    raw = daily_values(con, rubric, registry)
    daily = _scored(raw, rubric)
    raw["period"] = pd.to_datetime(raw["day"]).dt.strftime("%Y-%m")
    monthly_raw = raw.groupby(["unit_code", "unit_name", "period"], as_index=False)[list(SUMMED)].sum()
    monthly = _scored(monthly_raw, rubric)
    ranking = rank(con, monthly, rubric)
    return {"scorecard_daily": daily, "scorecard_monthly": monthly, "scorecard_ranking": ranking}


def _main_problems(con) -> dict[tuple[str, str], str]:
    """Per source and month, the expectation that failed most often, as a readable phrase."""
    rows = con.execute("""
        with failures as (
            select source, strftime(record_day, '%Y-%m') as period, expectation, count(*) as records
            from (select * from quality.quarantine union all select * from quality.warnings)
            where record_day is not null
            group by all
        )
        select source, period, expectation, records,
               row_number() over (partition by source, period order by records desc, expectation) as rank
        from failures qualify rank <= 2""").fetchall()
    descriptions = dict(con.execute("select expectation, description from quality.check_results").fetchall())
    from expectations.raw import BOUNDARY_RULES

    descriptions.update({name: text for name, _, text in BOUNDARY_RULES.values()})
    problems: dict[tuple[str, str], list[str]] = {}
    for source, period, expectation, records, _ in rows:
        problems.setdefault((source, period), []).append(f"{descriptions.get(expectation) or expectation}（{records} 条）")
    return {key: "；".join(values) for key, values in problems.items()}


def rank(con, monthly: pd.DataFrame, rubric: Rubric) -> pd.DataFrame:
    if monthly.empty:
        return monthly.assign(rank=pd.Series(dtype="int64"), main_problems=pd.Series(dtype="str"))
    problems = _main_problems(con)
    from ingestion.registry import load_registry

    sources_of: dict[str, list[str]] = {}
    for entry in load_registry().sources:
        sources_of.setdefault(entry.department, []).append(entry.name)
    ranked = monthly[monthly["received"] >= rubric.min_records_to_rank]
    ranked = ranked.sort_values(["period", "score", "received"], ascending=[True, False, False]).copy()
    ranked["rank"] = ranked.groupby("period")["score"].rank(method="min", ascending=False).astype("int64")
    ranked["main_problems"] = [
        "；".join(problems[(s, period)] for s in sources_of.get(unit, []) if (s, period) in problems) or "无"
        for unit, period in zip(ranked["unit_code"], ranked["period"], strict=True)]
    columns = ["period", "rank", "unit_code", "unit_name", "score", "grade", *[f"{d}_points" for d in DIMENSIONS],
               *DIMENSIONS, "received", "quarantined", "main_problems", "rubric_version"]
    return ranked[columns].reset_index(drop=True)


def write(con, tables: dict[str, pd.DataFrame]) -> None:
    con.execute("create schema if not exists quality")
    for name, frame in tables.items():
        con.register("scorecard_frame", frame)
        con.execute(f"create or replace table quality.{name} as select * from scorecard_frame")
        con.unregister("scorecard_frame")


def run_scorecard(warehouse_path=None) -> dict[str, pd.DataFrame]:
    from citizen_voice import warehouse

    with warehouse.connect(warehouse_path, read_only=True) as con:
        tables = compute(con)
    with warehouse.connect(warehouse_path) as con:
        write(con, tables)
    return tables
