"""The catalogue's validation, and definition options changing results exactly as specified: exclusions,
which satisfaction values count, the weight of 部分解决, and a versioned definition switch."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from citizen_voice.indicators import engine, service
from citizen_voice.indicators.catalogue import DEFAULT_CATALOGUE, CatalogueError, load_catalogue
from citizen_voice.indicators.periods import Period


def raw_catalogue() -> dict:
    return yaml.safe_load(DEFAULT_CATALOGUE.read_text(encoding="utf-8"))


def entry(raw: dict, key: str) -> dict:
    return next(i for i in raw["indicators"] if i["key"] == key)


def write(raw: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: entry(r, "satisfaction_rate")["numerator"]["where"][0].update({"in": ["满意", "很满意"]}),
     "indicators[12] (key: satisfaction_rate, version 1): numerator.where.0: unknown satisfaction values ['很满意']"),
    (lambda r: entry(r, "return_rate")["population"][0].update({"column": "returned_flag"}),
     "indicators[7] (key: return_rate, version 1): population.0: unknown column 'returned_flag'"),
    (lambda r: entry(r, "visit_rate").update({"exclude": ["invalid", "screened"]}),
     "indicator 'visit_rate' v1: unknown exclusions ['screened']"),
    (lambda r: entry(r, "close_rate").pop("numerator"), "indicators[5] (key: close_rate, version 1): (entry): "
                                                        "a ratio needs a numerator"),
    (lambda r: r["indicators"].append({**entry(r, "received"), "effective_from": "2024-06-01", "version": 2}),
     "indicator 'received': a later version must take effect strictly later"),
    (lambda r: entry(r, "received").update({"direction": "up"}), "indicators[0] (key: received, version 1): direction"),
])
def test_invalid_catalogues_are_refused_naming_file_indicator_and_field(tmp_path, change, message):
    raw = raw_catalogue()
    change(raw)
    path = write(raw, tmp_path / "bad.yaml")
    with pytest.raises(CatalogueError) as error:
        load_catalogue(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_the_shipped_catalogue_holds_the_standard_set():
    catalogue = load_catalogue()
    names = {i.name for i in catalogue.indicators}
    assert names == {"受理量", "日均受理量", "直接答复率", "及时签收率", "按时办结率", "办结率", "超期率", "退单率",
                     "延期率", "重办率", "回访率", "解决率", "满意率", "不满意率", "重复投诉率", "平均办理时长",
                     "响应率"}


@pytest.fixture(scope="module")
def baseline(indicator_city, tmp_path_factory):
    path = tmp_path_factory.mktemp("definitions") / "warehouse.duckdb"
    shutil.copyfile(indicator_city["warehouse"], path)
    with duckdb.connect(str(path)) as con:
        service.refresh(con)
    return path


def city_value(con, period: str, key: str) -> tuple[float, float, float, int]:
    return con.execute(f"select numerator, denominator, value, definition_version from {engine.VALUES} "
                       "where period = ? and grain = 'city' and indicator_key = ?", [period, key]).fetchone()


def month_filter(column: str, period: Period) -> str:
    return f"{column} >= timestamp '{period.start}' and {column} < timestamp '{period.end}'"


def test_options_change_results_as_specified(baseline, tmp_path):
    period = Period.parse("2026-08")
    raw = raw_catalogue()
    entry(raw, "satisfaction_rate")["numerator"]["where"][0]["in"] = ["满意"]
    entry(raw, "resolution_rate")["numerator"]["weights"]["values"]["部分解决"] = 0.0
    entry(raw, "direct_answer_rate")["exclude"] = ["merged"]
    variant = load_catalogue(write(raw, tmp_path / "variant.yaml"))
    work = tmp_path / "warehouse.duckdb"
    shutil.copyfile(baseline, work)
    with duckdb.connect(str(work)) as con:
        before = {k: city_value(con, "2026-08", k) for k in ("satisfaction_rate", "resolution_rate",
                                                              "direct_answer_rate")}
        closed = f"{month_filter('closed_at', period)} and demand_type_code <> 'WX' and not is_merged"
        basic = con.execute(f"select count(*) from marts.fct_work_orders where {closed} and satisfaction = '基本满意'"
                            ).fetchone()[0]
        partial = con.execute(f"select count(*) from marts.fct_work_orders where {closed} and resolution = '部分解决'"
                              ).fetchone()[0]
        invalid = con.execute(f"select count(*), count(*) filter (where is_direct_answer) from marts.fct_work_orders "
                              f"where {month_filter('received_at', period)} and demand_type_code = 'WX' "
                              "and not is_merged").fetchone()
        service.refresh(con, [period], catalogue=variant)
        after = {k: city_value(con, "2026-08", k) for k in before}
    assert basic > 0 and partial > 0 and invalid[0] > 0
    # 满意 only: 基本满意 leaves the numerator, not the valid follow-ups
    assert after["satisfaction_rate"][:2] == (before["satisfaction_rate"][0] - basic, before["satisfaction_rate"][1])
    # 部分解决 weighted 0 instead of 0.5
    assert after["resolution_rate"][0] == pytest.approx(before["resolution_rate"][0] - 0.5 * partial)
    assert after["resolution_rate"][1] == before["resolution_rate"][1]
    # without the 无效/骚扰 exclusion, the invalid calls join the denominator
    assert after["direct_answer_rate"][:2] == (before["direct_answer_rate"][0] + invalid[1],
                                               before["direct_answer_rate"][1] + invalid[0])


def test_a_new_version_recomputes_only_the_periods_it_affects_and_old_values_stay_reproducible(baseline, tmp_path):
    work = tmp_path / "warehouse.duckdb"
    shutil.copyfile(baseline, work)
    raw = raw_catalogue()
    satisfied_only = {**entry(raw, "satisfaction_rate"), "version": 2, "effective_from": "2026-09-01",
                      "description": "满意 ÷ 有效回访"}
    satisfied_only["numerator"] = {"where": [{"column": "satisfaction", "in": ["满意"]}]}
    raw["indicators"].append(satisfied_only)
    changed = load_catalogue(write(raw, tmp_path / "v2.yaml"))
    with duckdb.connect(str(work)) as con:
        old = con.execute(f"select * from {engine.VALUES} order by all").fetchall()
        unchanged = service.refresh(con, only_stale=True)
        assert unchanged["computed"] == [] and unchanged["skipped"] == ["2026-08", "2026-09"]
        report = service.refresh(con, only_stale=True, catalogue=changed)
        assert report["computed"] == ["2026-09"] and report["skipped"] == ["2026-08"]
        august = con.execute(f"select * from {engine.VALUES} where period = '2026-08' order by all").fetchall()
        assert august == [r for r in old if r[1] == "2026-08"]  # untouched, computed_at included
        september = city_value(con, "2026-09", "satisfaction_rate")
        old_september = next(r for r in old if r[1] == "2026-09" and r[3] == "city" and r[7] == "satisfaction_rate")
        assert september[3] == 2 and september[1] == old_september[12] and september[0] < old_september[11]
        # a past period recomputed on purpose uses the version in force then, and gives the same values
        service.refresh(con, [Period.parse("2026-08")], catalogue=changed)
        again = con.execute(f"select * from {engine.VALUES} where period = '2026-08' order by all").fetchall()
        without_time = [tuple(v for i, v in enumerate(r) if i not in (14, 15, 16, 17, 18, 19, 22)) for r in again]
        assert without_time == [tuple(v for i, v in enumerate(r) if i not in (14, 15, 16, 17, 18, 19, 22))
                                for r in august]
        assert engine.explain(con, "satisfaction_rate", Period.parse("2026-08"), catalogue=changed
                              ).indicator.version == 1
        assert engine.explain(con, "satisfaction_rate", Period.parse("2026-09"), catalogue=changed
                              ).indicator.version == 2
        versions = dict(con.execute(f"select period, versions->>'satisfaction_rate' from {engine.COMPUTED} "
                                    "where period_type = 'month'").fetchall())
        assert versions == {"2026-08": "1", "2026-09": "2"}


def test_year_on_year_and_month_on_month_on_a_city_shifted_by_a_year(baseline, tmp_path):
    """The two-month city plus a copy of it one year earlier: 同比 compares with the copy."""
    work = tmp_path / "warehouse.duckdb"
    shutil.copyfile(baseline, work)
    stamps = ["received_at", "dispatched_at", "signed_at", "sign_due_at", "base_due_at", "due_at",
              "first_closed_at", "closed_at", "visited_at", "source_updated_at"]
    with duckdb.connect(str(work)) as con:
        columns = [r[0] for r in con.execute("describe marts.fct_work_orders").fetchall()]
        shifted = ["'LY' || order_no" if c == "order_no" else f"{c} - interval 1 year" if c in stamps
                   else "cast(received_date - interval 1 year as date)" if c == "received_date" else c
                   for c in columns]
        con.execute(f"insert into marts.fct_work_orders select {', '.join(shifted)} from marts.fct_work_orders")
        service.refresh(con)
        rows = {(p, k): (v, prev, ly, mom, yoy) for p, k, v, prev, ly, mom, yoy in con.execute(
            f"select period, indicator_key, value, previous_value, last_year_value, mom_rate, yoy_rate "
            f"from {engine.VALUES} where grain = 'city' and period_type = 'month'").fetchall()}
    value, previous, last_year, mom, yoy = rows[("2026-08", "received")]
    assert last_year == rows[("2025-08", "received")][0] == value and yoy == 0
    assert previous is None  # 2026-07 has no orders
    value, previous, last_year, mom, yoy = rows[("2026-09", "received")]
    assert previous == rows[("2026-08", "received")][0]
    assert mom == pytest.approx(value / previous - 1)
    assert rows[("2025-09", "received")][2] is None
