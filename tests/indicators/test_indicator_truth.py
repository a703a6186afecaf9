"""Indicator values on a real sandbox warehouse equal an independent pandas recount from the city's
ground truth (truth/work_orders.parquet, events.parquet).

The recount covers the orders present in marts.fct_work_orders (the warehouse quarantines orders
whose records are unusable; those are in no indicator) and takes every attribute from the truth,
not from the warehouse. The one exception is documented where it is made: survey records the
sandbox corrupts on purpose, whose 回访/满意度/是否解决 the warehouse cannot know."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from citizen_voice.indicators import engine, service
from citizen_voice.indicators.periods import Period
from citizen_voice.workdays import calendar_rows

GRAIN_COLUMNS = {"city": None, "district": "district_code", "department": "lead_dept_code",
                 "channel": "channel_code", "street": "street_code"}


@pytest.fixture(scope="module")
def computed(indicator_city, tmp_path_factory):
    import shutil

    path = tmp_path_factory.mktemp("truth_compare") / "warehouse.duckdb"
    shutil.copyfile(indicator_city["warehouse"], path)
    with duckdb.connect(str(path)) as con:
        summary = service.refresh(con)
        values = con.execute(f"select * from {engine.VALUES}").df()
        facts = con.execute("select order_no, satisfaction, resolution, visited_at from marts.fct_work_orders").df()
    return {"summary": summary, "values": values, "facts": facts}


@pytest.fixture(scope="module")
def truth(indicator_city, computed):
    folder = indicator_city["truth"]
    orders = pq.read_table(folder / "work_orders.parquet").to_pandas()
    present = computed["facts"].set_index("order_no")
    orders = orders[orders["order_no"].isin(present.index)].copy()
    assert len(orders) == len(present)  # every order in the facts exists in the truth
    # Survey records corrupted on purpose (faults.json, system "survey"): the warehouse cannot know their
    # true rating (nor when the visit happened), so for those orders only the warehouse's reading stands in
    # for the truth.
    faults = json.loads((folder / "faults.json").read_text(encoding="utf-8"))
    survey_faulted = {f["order_no"] for f in faults if f["system"] == "survey"} & set(orders["order_no"])
    for column in ("satisfaction", "resolution", "visited_at"):
        faulted = orders["order_no"].isin(survey_faulted)
        orders.loc[faulted, column] = orders.loc[faulted, "order_no"].map(present[column])
    events = pq.read_table(folder / "events.parquet").to_pandas()
    first_close = events[events["event_type"] == "close"].groupby("order_no")["occurred_at"].min()
    orders["first_closed_at"] = orders["order_no"].map(first_close)
    index = {pd.Timestamp(r["date_day"]): r["workday_index"] for r in calendar_rows()}
    orders["handling_working_days"] = [
        index[c.normalize()] - index[d.normalize()] if pd.notna(c) and pd.notna(d) else np.nan
        for c, d in zip(orders["closed_at"], orders["dispatched_at"], strict=True)]
    observed = orders["closed_at"].fillna(orders["received_at"]).max()
    orders["observed_passed_due"] = orders["due_at"].notna() & (orders["due_at"] <= observed)
    orders["sign_due_passed"] = orders["sign_due_at"].notna() & (orders["sign_due_at"] <= observed)
    orders["signed_on_time"] = orders["signed_at"].notna() & (orders["signed_at"] <= orders["sign_due_at"])
    orders["closed_on_time"] = orders["closed_at"].notna() & (orders["closed_at"] <= orders["due_at"])
    orders["overdue"] = orders["closed_at"].isna() | (orders["closed_at"] > orders["due_at"])
    orders["invalid"] = orders["demand_type_code"] == "WX"
    orders["merged"] = orders["parent_order_no"].notna()
    orders["dispatched"] = orders["dispatched_at"].notna()
    orders["repeat"] = _repeats(orders)
    return orders


def _repeats(orders: pd.DataFrame) -> pd.Series:
    """The fixture's rule, in pandas on the true caller: a valid order whose caller had another valid order
    received at most 30 days before."""
    repeat = pd.Series(False, index=orders.index)
    valid = orders[~(orders["demand_type_code"] == "WX")].sort_values("received_at")
    for _, calls in valid.groupby("caller_key"):
        times = calls["received_at"].tolist()
        for position in range(1, len(times)):
            if any(times[position] - t <= pd.Timedelta(days=30) and t < times[position] for t in times[:position]):
                repeat[calls.index[position]] = True
    return repeat


def in_month(series: pd.Series, period: Period) -> pd.Series:
    return (series >= pd.Timestamp(period.start)) & (series < pd.Timestamp(period.end))


def expected(orders: pd.DataFrame, period: Period, days: int) -> dict[str, tuple[float, float | None]]:
    """(numerator, denominator) of every indicator, written out here independently of the catalogue."""
    valid = orders[~orders["invalid"] & ~orders["merged"]]
    received = orders[in_month(orders["received_at"], period)]
    by_received = valid[in_month(valid["received_at"], period)]
    dispatched = by_received[by_received["dispatched"]]
    sign_due = dispatched[dispatched["sign_due_passed"]]
    due = valid[in_month(valid["due_at"], period) & valid["dispatched"] & valid["observed_passed_due"]]
    first_closed = valid[in_month(valid["first_closed_at"], period) & valid["dispatched"]]
    closed = valid[in_month(valid["closed_at"], period)]
    rated = closed[closed["resolution"].notna()]
    followed = closed[closed["satisfaction"].isin(["满意", "基本满意", "不满意"])]
    handled = closed[closed["dispatched"] & closed["handling_working_days"].notna()]
    not_invalid = orders[~orders["invalid"] & in_month(orders["received_at"], period)]
    weights = rated["resolution"].map({"解决": 1.0, "部分解决": 0.5}).fillna(0.0)
    return {
        "received": (len(received), None),
        "daily_received": (len(received), days),
        "direct_answer_rate": (by_received["is_direct_answer"].sum(), len(by_received)),
        "timely_sign_rate": (sign_due["signed_on_time"].sum(), len(sign_due)),
        "response_rate": ((sign_due["signed_on_time"] & ~sign_due["returned"]).sum(), len(sign_due)),
        "on_time_close_rate": (due["closed_on_time"].sum(), len(due)),
        "close_rate": (due["closed_at"].notna().sum(), len(due)),
        "overdue_rate": (due["overdue"].sum(), len(due)),
        "return_rate": (dispatched["returned"].sum(), len(dispatched)),
        "extension_rate": (dispatched["extended"].sum(), len(dispatched)),
        "redo_rate": (first_closed["redone"].sum(), len(first_closed)),
        "visit_rate": (closed["visited_at"].notna().sum(), len(closed)),
        "resolution_rate": (weights.sum(), len(rated)),
        "satisfaction_rate": (followed["satisfaction"].isin(["满意", "基本满意"]).sum(), len(followed)),
        "dissatisfaction_rate": ((followed["satisfaction"] == "不满意").sum(), len(followed)),
        "repeat_complaint_rate": (not_invalid["repeat"].sum(), len(not_invalid)),
        "avg_handling_days": (handled["handling_working_days"].sum(), len(handled)),
    }


def test_every_indicator_at_every_grain_equals_the_truth_recount(computed, truth):
    values = computed["values"]
    months = sorted(values.loc[values["period_type"] == "month", "period"].unique())
    assert len(months) == 2
    first_day, last_day = truth["received_at"].min().date(), truth["received_at"].max().date()
    compared, mismatches = 0, []
    for label in months:
        period = Period.parse(label)
        days = (min(period.end.toordinal() - 1, last_day.toordinal())
                - max(period.start, first_day).toordinal() + 1)
        for grain, column in GRAIN_COLUMNS.items():
            groups = [("city", truth)] if column is None else list(truth.groupby(column))
            for unit, orders in groups:
                stored = values[(values["period"] == label) & (values["grain"] == grain)
                                & (values["unit_code"] == unit)].set_index("indicator_key")
                for key, (numerator, denominator) in expected(orders, period, days).items():
                    if key not in stored.index:
                        if numerator or denominator:
                            mismatches.append((label, grain, unit, key, "missing", numerator, denominator))
                        continue
                    row = stored.loc[key]
                    got = (row["numerator"], None if pd.isna(row["denominator"]) else row["denominator"])
                    if not (np.isclose(got[0], numerator) and (got[1] == denominator or np.isclose(got[1], denominator))):
                        mismatches.append((label, grain, unit, key, got, numerator, denominator))
                    compared += 1
    assert compared > 1000
    assert not mismatches, (sorted({m[3] for m in mismatches}), len(mismatches), mismatches[:15])


def test_values_are_ratios_of_their_parts_and_cover_every_grain(computed):
    values = computed["values"]
    assert set(values["grain"]) == set(engine.GRAINS)
    ratios = values[values["indicator_key"].str.endswith("_rate") & (values["denominator"] > 0)]
    assert np.allclose(ratios["value"], ratios["numerator"] / ratios["denominator"])
    assert ((ratios["value"] >= 0) & (ratios["value"] <= 1)).all()
    assert values[values["denominator"] == 0]["value"].isna().all()
    assert values["unit_name"].notna().all()
    summary = computed["summary"]
    assert summary["warnings"] == [] and len(summary["computed"]) == 2
