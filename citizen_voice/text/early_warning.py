"""Emerging-issue early warning (预警 / 未诉先办): significant rises of a category in a street or district.

Method (a conditional binomial test on each area's own baseline share)
---------------------------------------------------------------------
For every level (street, district), area a, category k and day D, and each window of w days
ending on D (default w = 1 and 3):

* x = orders of category k in area a in the window;
* n = orders of category k in all areas of that level in the window;
* p = area a's share of category k over its own baseline, the `baseline_days` (56) before the
  window (at least `min_baseline_days`), shrunk towards the area's share of all orders with
  `prior_weight` pseudo-orders: p = (x_base + m * s_a) / (n_base + m);
* expected e = n * p, and the p-value P(X >= x) for X ~ Binomial(n, p).

Invalid calls and repeat demands (text.repeat_demands: the same caller again, or a near-duplicate
text) are not counted: a rise means more distinct demands.

Conditioning on the city-wide count of the category in the same window makes the test
seasonality-aware: weekday and holiday effects, and seasonal topics (heating in winter, flooding
in summer) that rise everywhere at once, move n, not a's share, so they do not alarm; a rise
concentrated in one area does. (This is the space-time permutation idea of Kulldorff et al., 2005,
used in syndromic surveillance, tested on fixed windows instead of a scan.) A city-wide rise of a
category is a seasonal/planning signal, not an area alert, and is left to the hot-topic growth
figures.

An alert fires when x >= `min_count`, x / e >= `min_ratio` and p-value <= `alpha`; alerts of the
same area and category on days less than `merge_gap_days` apart form one alert episode (one row).
Sensitivity: `WarningSettings.preset("low" | "medium" | "high")` or any field by hand; lower alpha
and higher min_count mean fewer, surer alerts. Each alert carries its evidence: observed and
expected counts, the baseline share and counts, the p-value, the daily counts of the episode and
example order numbers.

The table `text.early_warnings` is recomputed on each run (idempotent) from marts.fct_work_order_texts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
from scipy.stats import binom

from citizen_voice.text.repeats import TABLE as REPEATS
from citizen_voice.text.tokens import SCHEMA, TEXTS, ensure_schema
from citizen_voice.warehouse import has_table, transaction

TABLE = f"{SCHEMA}.early_warnings"
METHOD_VERSION = "binomial-share-v1"
LEVELS = {"street": "street_code", "district": "district_code"}


@dataclass(frozen=True)
class WarningSettings:
    alpha: float = 1e-5
    min_count: int = 4
    min_ratio: float = 3.0
    windows: tuple[int, ...] = (1, 3)
    baseline_days: int = 56
    min_baseline_days: int = 14
    prior_weight: float = 10.0
    merge_gap_days: int = 3
    examples: int = 5

    @classmethod
    def preset(cls, sensitivity: str) -> WarningSettings:
        presets = {"low": cls(alpha=1e-6, min_count=5, min_ratio=4.0), "medium": cls(),
                   "high": cls(alpha=1e-4, min_count=3, min_ratio=2.0)}
        if sensitivity not in presets:
            raise ValueError(f"sensitivity must be one of {', '.join(presets)}, not {sensitivity!r}")
        return presets[sensitivity]

    def with_(self, **changes) -> WarningSettings:
        return replace(self, **changes)


def daily_counts(con, exclude_repeats: bool = True) -> pd.DataFrame:
    """Orders per day, category, district and street. Invalid calls are left out, and so are repeat
    demands (text.repeat_demands, when it exists): a caller calling again is not a rise."""
    has_repeats = exclude_repeats and has_table(con, *REPEATS.split("."))
    repeat_filter = (f"and t.order_no not in (select order_no from {REPEATS} where is_repeat)"
                     if has_repeats else "")
    return con.execute(f"""
        select received_date as day, category_code, district_code, street_code, count(*) as orders
        from {TEXTS} as t
        where demand_type_code is distinct from 'WX' and received_date is not null and category_code is not null
          {repeat_filter}
        group by all""").df()


def _window_sums(cumulative: np.ndarray, end: np.ndarray, length: int) -> np.ndarray:
    """Sums over [end - length + 1, end] along the last axis, from a cumulative sum with a leading 0."""
    start = np.clip(end - length + 1, 0, None)
    return cumulative[..., end + 1] - cumulative[..., start]


def detect(counts: pd.DataFrame, settings: WarningSettings = WarningSettings(),
           first_day: date | None = None) -> pd.DataFrame:
    """Alert episodes from daily counts (columns day, category_code, district_code, street_code, orders).

    `first_day`: only alerts detected on or after this day (the whole history by default)."""
    columns = ["level", "area_code", "district_code", "category_code", "first_alert_date", "last_alert_date",
               "window_start", "alert_days", "observed", "expected", "ratio", "p_value", "baseline_share",
               "baseline_orders", "baseline_category_orders", "daily_counts"]
    if counts.empty:
        return pd.DataFrame(columns=columns)
    counts = counts.copy()
    counts["day"] = pd.to_datetime(counts["day"]).dt.date
    days = pd.date_range(min(counts["day"]), max(counts["day"]), freq="D").date
    day_index = {d: i for i, d in enumerate(days)}
    episodes = []
    for level, column in LEVELS.items():
        data = counts[counts[column].notna()]
        if data.empty:
            continue
        areas = sorted(data[column].unique())
        categories = sorted(data["category_code"].unique())
        a_idx = {a: i for i, a in enumerate(areas)}
        k_idx = {k: i for i, k in enumerate(categories)}
        grid = np.zeros((len(areas), len(categories), len(days)), dtype=np.int64)
        np.add.at(grid, (data[column].map(a_idx).to_numpy(), data["category_code"].map(k_idx).to_numpy(),
                         data["day"].map(day_index).to_numpy()), data["orders"].to_numpy())
        district_of = data.groupby(column)["district_code"].first().to_dict()
        cum = np.concatenate([np.zeros(grid.shape[:2] + (1,), dtype=np.int64), grid.cumsum(axis=2)], axis=2)
        cum_k = cum.sum(axis=0)  # (categories, days+1)
        cum_a = cum.sum(axis=1)  # (areas, days+1)
        cum_all = cum_a.sum(axis=0)
        hits: dict[tuple[int, int], dict[int, dict]] = {}
        for w in settings.windows:
            ends = np.arange(len(days))
            base_end = ends - w  # the baseline ends the day before the window
            base_len = np.minimum(settings.baseline_days, base_end + 1)
            usable = base_len >= settings.min_baseline_days
            if first_day is not None:
                usable &= np.array([d >= first_day for d in days])
            ends, base_end, base_len = ends[usable], base_end[usable], base_len[usable]
            if not len(ends):
                continue
            x = _window_sums(cum, ends, w)
            candidates = np.argwhere(x >= settings.min_count)
            if not len(candidates):
                continue
            ai, ki, ti = candidates[:, 0], candidates[:, 1], candidates[:, 2]
            e_idx, b_end, b_len = ends[ti], base_end[ti], base_len[ti]
            obs = x[ai, ki, ti]
            n = cum_k[ki, e_idx + 1] - cum_k[ki, np.clip(e_idx - w + 1, 0, None)]
            x_base = cum[ai, ki, b_end + 1] - cum[ai, ki, b_end + 1 - b_len]
            n_base = cum_k[ki, b_end + 1] - cum_k[ki, b_end + 1 - b_len]
            area_base = cum_a[ai, b_end + 1] - cum_a[ai, b_end + 1 - b_len]
            all_base = cum_all[b_end + 1] - cum_all[b_end + 1 - b_len]
            prior = np.where(all_base > 0, area_base / np.maximum(all_base, 1), 1 / len(areas))
            share = (x_base + settings.prior_weight * prior) / (n_base + settings.prior_weight)
            share = np.clip(share, 1e-6, 0.999)
            expected = n * share
            p_value = binom.sf(obs - 1, n, share)
            fire = (obs / np.maximum(expected, 1e-9) >= settings.min_ratio) & (p_value <= settings.alpha)
            for j in np.flatnonzero(fire):
                key = (int(ai[j]), int(ki[j]))
                end = int(e_idx[j])
                previous = hits.setdefault(key, {}).get(end)
                if previous is None or p_value[j] < previous["p_value"]:
                    hits[key][end] = {"w": w, "observed": int(obs[j]), "expected": float(expected[j]),
                                      "p_value": float(p_value[j]), "share": float(share[j]),
                                      "x_base": int(x_base[j]), "n_base": int(n_base[j])}
        for (a, k), by_end in hits.items():
            for run in _runs(sorted(by_end), settings.merge_gap_days):
                strongest = min(run, key=lambda e: by_end[e]["p_value"])
                s = by_end[strongest]
                first = run[0]
                window_start = first - by_end[first]["w"] + 1
                daily = {days[d].isoformat(): int(grid[a, k, d]) for d in range(window_start, run[-1] + 1)}
                episodes.append({
                    "level": level, "area_code": areas[a], "district_code": district_of.get(areas[a]),
                    "category_code": categories[k], "first_alert_date": days[first],
                    "last_alert_date": days[run[-1]], "window_start": days[window_start], "alert_days": len(run),
                    "observed": s["observed"], "expected": round(s["expected"], 3),
                    "ratio": round(s["observed"] / max(s["expected"], 1e-9), 2), "p_value": s["p_value"],
                    "baseline_share": round(s["share"], 5), "baseline_orders": s["x_base"],
                    "baseline_category_orders": s["n_base"], "daily_counts": json.dumps(daily)})
    return pd.DataFrame(episodes, columns=columns)


def _runs(ends: list[int], gap: int) -> list[list[int]]:
    runs: list[list[int]] = []
    for end in ends:
        if runs and end - runs[-1][-1] <= gap:
            runs[-1].append(end)
        else:
            runs.append([end])
    return runs


def refresh(con, settings: WarningSettings = WarningSettings()) -> dict:
    """Recompute text.early_warnings from the facts' texts, with example order numbers per alert."""
    ensure_schema(con)
    alerts = detect(daily_counts(con), settings)
    alerts["alert_id"] = [
        "EW-" + hashlib.sha1(f"{r.level}|{r.area_code}|{r.category_code}|{r.first_alert_date}".encode()).hexdigest()[:12]
        for r in alerts.itertuples()]
    alerts["method"] = METHOD_VERSION
    alerts["settings"] = json.dumps(asdict(settings))
    with transaction(con):
        con.register("alerts_frame", alerts)
        con.execute(f"""
            create or replace table {TABLE} as
            select a.alert_id, a.level, a.area_code, a.district_code, a.category_code, c.category_name,
                   cast(a.first_alert_date as date) as first_alert_date, cast(a.last_alert_date as date) as last_alert_date,
                   cast(a.window_start as date) as window_start, a.alert_days::integer as alert_days,
                   a.observed::integer as observed, a.expected::double as expected, a.ratio::double as ratio,
                   a.p_value::double as p_value, a.baseline_share::double as baseline_share,
                   a.baseline_orders::integer as baseline_orders,
                   a.baseline_category_orders::integer as baseline_category_orders,
                   a.daily_counts, cast(null as varchar) as example_orders, a.method, a.settings
            from alerts_frame a left join marts.dim_category c on c.category_code = a.category_code""")
        con.unregister("alerts_frame")
        con.execute(f"""
            update {TABLE} as w set example_orders = e.orders
            from (
                select w.alert_id, string_agg(t.order_no, ',' order by t.received_at, t.order_no) as orders
                from {TABLE} w
                join lateral (
                    select t.order_no, t.received_at from {TEXTS} t
                    where t.category_code = w.category_code
                      and (case w.level when 'street' then t.street_code else t.district_code end) = w.area_code
                      and t.received_date between w.window_start and w.last_alert_date
                      and t.demand_type_code is distinct from 'WX'
                    order by t.received_at, t.order_no limit {int(settings.examples)}
                ) t on true
                group by w.alert_id
            ) e where e.alert_id = w.alert_id""")
    return {"alerts": len(alerts), "street_alerts": int((alerts["level"] == "street").sum()) if len(alerts) else 0}


# -- evaluation against known bursts (the sandbox's ground truth) ------------------------------------------------
def evaluate(alerts: pd.DataFrame, bursts: list[dict], evaluated_days: int, grace_days: int = 2) -> dict:
    """Precision (alert episodes matching a burst), recall (bursts with a matching alert) and false
    alarms per month. An alert matches a burst of the same category when its area is the burst's
    street (street level) or district (district level) and it first fired between the burst's first
    day and `grace_days` after its last."""
    matched_bursts: set[str] = set()
    false_alarms = 0
    for alert in alerts.itertuples():
        first = pd.Timestamp(alert.first_alert_date).date()
        hit = None
        for burst in bursts:
            start = date.fromisoformat(burst["start"])
            area = burst["street_code"] if alert.level == "street" else burst["district_code"]
            if (alert.category_code == burst["category_code"] and alert.area_code == area
                    and start <= first <= start + timedelta(days=burst["days"] - 1 + grace_days)):
                hit = burst["burst_id"]
                break
        if hit:
            matched_bursts.add(hit)
        else:
            false_alarms += 1
    alerts_total = len(alerts)
    return {"alerts": alerts_total, "true_alerts": alerts_total - false_alarms, "false_alarms": false_alarms,
            "precision": (alerts_total - false_alarms) / alerts_total if alerts_total else None,
            "recall": len(matched_bursts) / len(bursts) if bursts else None,
            "detected_bursts": sorted(matched_bursts),
            "false_alarms_per_month": false_alarms / (evaluated_days / 30.44) if evaluated_days else None}
