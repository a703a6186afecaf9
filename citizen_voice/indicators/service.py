"""What the CLI and Dagster call: compute periods, then scores (months) and the compatibility view."""

from __future__ import annotations

import duckdb

from citizen_voice.indicators import district_monthly, engine, scoring
from citizen_voice.indicators.catalogue import Catalogue, load_catalogue
from citizen_voice.indicators.periods import Period

KEY_FIGURES = ("received", "response_rate", "resolution_rate", "satisfaction_rate", "on_time_close_rate")


def refresh(con: duckdb.DuckDBPyConnection, periods: list[Period] | None = None, *, period_type: str = "month",
            only_stale: bool = False, catalogue: Catalogue | None = None,
            scoring_scheme: scoring.Scoring | None = None) -> dict:
    """Compute the periods (default: every period in the data), score the months computed, and keep
    indicators.district_monthly. Returns a summary with the city's key figures of the newest period."""
    catalogue = catalogue or load_catalogue()
    scoring_scheme = scoring_scheme or scoring.load_scoring(catalogue=catalogue)
    periods = periods if periods is not None else engine.periods_in_data(con, period_type)
    report = engine.compute(con, periods, catalogue, only_stale=only_stale)
    scored = {}
    for label in report.computed:
        period = Period.parse(label, period_type)
        if period.type == "month":
            scored[label] = scoring.score_period(con, period, scoring_scheme)
    district_monthly.create_view(con)
    summary = {"computed": report.computed, "skipped": report.skipped, "rows": report.rows,
               "warnings": report.warnings, "seconds": round(report.seconds, 3), "scored": scored}
    if periods:
        newest = max(periods)
        city = {r["indicator_key"]: r for r in engine.read_values(con, newest, "city", engine.CITY_CODE)}
        summary["newest_period"] = newest.label
        summary["city"] = {k: city[k]["value"] for k in KEY_FIGURES if k in city}
        summary["versions"] = {k: r["definition_version"] for k, r in city.items()}
    return summary
