"""Scores and rankings: threshold scoring, target ratios, ties, small units, peer groups, 红榜/黑榜; the
explain command; the Dagster assets on a real warehouse."""

from __future__ import annotations

import shutil
from datetime import date

import dagster as dg
import duckdb
import pytest
from typer.testing import CliRunner

from citizen_voice.indicators import engine, scoring
from citizen_voice.indicators.cli import indicators_app
from citizen_voice.indicators.periods import Period

SCHEME = scoring.Scheme(
    version=1, effective_from=date(2025, 1, 1), name="test", min_orders=30, list_size=2,
    rank_grains=["district", "department"],
    components=[scoring.Component(indicator="response_rate", weight=30, target=0.95, floor=0.5),
                scoring.Component(indicator="resolution_rate", weight=35, target=0.9, floor=0.6),
                scoring.Component(indicator="satisfaction_rate", weight=35, target=0.9, floor=0.85)])


def synthetic_values(units: dict[str, tuple[int, float, float, float]], grain: str = "department",
                     peer_group: str = "市直部门") -> duckdb.DuckDBPyConnection:
    """An in-memory indicator_values with one month of (受理量, 响应率, 解决率, 满意率) per unit."""
    con = duckdb.connect()
    engine.ensure_tables(con)
    keys = {"received": "受理量", "response_rate": "响应率", "resolution_rate": "解决率", "satisfaction_rate": "满意率"}
    for unit, figures in units.items():
        for key, value in zip(keys, figures, strict=True):
            con.execute(f"insert into {engine.VALUES} (period_type, period, period_start, grain, unit_code, unit_name, "
                        "peer_group, indicator_key, indicator_name, unit, direction, value, definition_version, "
                        "definition_effective_from, computed_at) values ('month', '2026-08', date '2026-08-01', ?, ?, "
                        "?, ?, ?, ?, '%', 'higher_better', ?, 1, date '2025-01-01', now())",
                        [grain, unit, f"单位{unit}", peer_group, key, keys[key], value])
    return con


def rankings(con) -> dict[str, dict]:
    cursor = con.execute(f"select * from {scoring.RANKINGS}")
    names = [d[0] for d in cursor.description]
    return {r[names.index("unit_code")]: dict(zip(names, r, strict=True)) for r in cursor.fetchall()}


def test_points_follow_targets_caps_and_floors():
    component = SCHEME.components[2]
    assert scoring.component_points(component, 0.99, "higher_better")[1] == 35  # capped at target
    assert scoring.component_points(component, 0.87, "higher_better")[1] == pytest.approx(35 * 0.87 / 0.9)
    assert scoring.component_points(component, 0.84, "higher_better")[1:] == (0.0, True)  # below the floor
    lower = scoring.Component(indicator="overdue_rate", weight=10, target=0.05, floor=0.2)
    assert scoring.component_points(lower, 0.10, "lower_better")[1] == pytest.approx(5.0)
    assert scoring.component_points(lower, 0.25, "lower_better")[1:] == (0.0, True)


def test_ties_share_a_rank_small_units_are_flagged_and_lists_name_what_pulled_units_down():
    con = synthetic_values({
        "A": (100, 0.95, 0.90, 0.90),   # full marks
        "B": (100, 0.95, 0.90, 0.90),   # tied with A
        "C": (100, 0.90, 0.90, 0.90),
        "D": (100, 0.95, 0.90, 0.84),   # 满意率 below the floor: 0 of 35 points
        "E": (100, 0.60, 0.80, 0.88),
        "F": (12, 0.99, 0.99, 0.99),    # best figures, too few orders
    })
    summary = scoring.score_period(con, Period.parse("2026-08"), scoring.Scoring(schemes=[SCHEME]))
    ranked = rankings(con)
    assert summary == {"scheme": 1, "units": 6, "ranked": 5}
    assert (ranked["A"]["rank"], ranked["B"]["rank"], ranked["C"]["rank"]) == (1, 1, 3)
    assert ranked["A"]["score"] == ranked["B"]["score"] == 100
    assert ranked["F"]["rank"] is None and not ranked["F"]["is_ranked"] and "受理量 12 < 30" in ranked["F"]["flag"]
    assert ranked["D"]["rank"] == 5 and ranked["E"]["rank"] == 4
    assert [ranked[u]["list"] for u in "ABCDEF"] == ["红榜", "红榜", None, "黑榜", None, None]
    assert ranked["D"]["pulled_down_by"].startswith("满意率 84.00%（目标 90%，低于门槛 0 分，失 35.0 分）")
    assert ranked["E"]["pulled_down_by"].split("；")[0].startswith("响应率 60.00%")
    assert all(r["ranked_units"] == 5 for r in ranked.values() if r["is_ranked"])


def test_peer_groups_are_ranked_separately_and_missing_values_are_not_ranked():
    con = synthetic_values({"X1": (50, 0.9, 0.9, 0.9), "X2": (50, 0.8, 0.8, 0.9)}, peer_group="市直部门")
    more = synthetic_values({"Y1": (50, 0.7, 0.9, 0.9), "Y2": (50, 0.6, 0.9, None)}, peer_group="公共企业")
    for row in more.execute(f"select * from {engine.VALUES}").fetchall():
        con.execute(f"insert into {engine.VALUES} values ({', '.join(['?'] * len(row))})", list(row))
    scoring.score_period(con, Period.parse("2026-08"), scoring.Scoring(schemes=[SCHEME]))
    ranked = rankings(con)
    assert (ranked["X1"]["rank"], ranked["X2"]["rank"], ranked["Y1"]["rank"]) == (1, 2, 1)
    assert ranked["Y2"]["rank"] is None and "无数据: 满意率" in ranked["Y2"]["flag"]


@pytest.fixture(scope="module")
def computed_warehouse(indicator_city, tmp_path_factory):
    path = tmp_path_factory.mktemp("rankings") / "warehouse.duckdb"
    shutil.copyfile(indicator_city["warehouse"], path)
    return path


def test_cli_compute_then_explain_lists_the_orders_behind_a_value(computed_warehouse, monkeypatch):
    monkeypatch.setenv("CV_WAREHOUSE", str(computed_warehouse))
    runner = CliRunner()
    result = runner.invoke(indicators_app, ["compute", "--period", "all"])
    assert result.exit_code == 0, result.output
    assert "computed 2 period(s): 2026-08, 2026-09" in result.output
    with duckdb.connect(str(computed_warehouse), read_only=True) as con:
        unit, numerator, denominator = con.execute(
            f"select unit_code, numerator, denominator from {engine.VALUES} where period = '2026-08' "
            "and grain = 'district' and indicator_key = 'satisfaction_rate' order by unit_code limit 1").fetchone()
        ranked = con.execute(f"select count(*) from {scoring.RANKINGS} where period = '2026-08' and is_ranked"
                             ).fetchone()[0]
    assert ranked > 10
    result = runner.invoke(indicators_app, ["explain", "satisfaction_rate", "--unit", unit, "--grain", "district",
                                            "--period", "2026-08"])
    assert result.exit_code == 0, result.output
    assert "definition: version 1, effective from 2025-01-01" in result.output
    assert f"numerator orders: {int(numerator)}\n" in result.output
    assert f"denominator orders: {int(denominator)}\n" in result.output
    listed = [o for line in result.output.split("numerator orders:")[1].split("denominator orders:")[0].splitlines()[1:]
              for o in line.split()]
    assert len(listed) == int(numerator)
    with duckdb.connect(str(computed_warehouse), read_only=True) as con:
        found = dict(con.execute("select order_no, satisfaction from marts.fct_work_orders "
                                 "where order_no in (select unnest(?))", [listed]).fetchall())
        wrong_unit = con.execute("select count(*) from marts.fct_work_orders where order_no in (select unnest(?)) "
                                 "and district_code <> ?", [listed, unit]).fetchone()[0]
    assert set(found.values()) <= {"满意", "基本满意"} and len(found) == len(listed) and wrong_unit == 0
    bad = runner.invoke(indicators_app, ["explain", "happiness_rate", "--period", "2026-08"])
    assert bad.exit_code == 2 and "unknown indicator 'happiness_rate'" in bad.output


def test_dagster_partitioned_assets_compute_their_period(indicator_city, tmp_path, monkeypatch):
    from orchestration.defs.indicators import daily_indicators, monthly_indicators

    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(indicator_city["warehouse"], path)
    monkeypatch.setenv("CV_WAREHOUSE", str(path))
    instance = dg.DagsterInstance.ephemeral()
    month = dg.materialize([monthly_indicators], partition_key="2026-08-01", instance=instance)
    day = dg.materialize([daily_indicators], partition_key="2026-08-03", instance=instance)
    assert month.success and day.success
    metadata = month.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["period"].value == "2026-08" and metadata["city_received"].value > 1000
    with duckdb.connect(str(path), read_only=True) as con:
        periods = con.execute(f"select distinct period_type, period from {engine.VALUES} order by 1, 2").fetchall()
        received_day = con.execute("select count(*) from marts.fct_work_orders where received_date = '2026-08-03'"
                                   ).fetchone()[0]
        stored_day = con.execute(f"select value from {engine.VALUES} where period = '2026-08-03' and grain = 'city' "
                                 "and indicator_key = 'received'").fetchone()[0]
    assert periods == [("day", "2026-08-03"), ("month", "2026-08")]
    assert stored_day == received_day > 0
