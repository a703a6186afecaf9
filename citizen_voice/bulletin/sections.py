"""The bulletin's sections: each reads its figures from the warehouse (indicators.*, text.*, quality.*,
marts.*) and returns them with the blocks to show. Nothing is computed here that the warehouse does not
already hold, beyond sums and shares of counts it holds; the template only formats."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape

from citizen_voice.bulletin import charts
from citizen_voice.privacy import scrub_text
from citizen_voice.warehouse import has_table

OVERVIEW_RATES = ("direct_answer_rate", "on_time_close_rate", "overdue_rate", "satisfaction_rate",
                  "resolution_rate", "response_rate", "timely_sign_rate", "close_rate", "visit_rate")
HANDLING_COLUMNS = (("received", "受理量"), ("on_time_close_rate", "按时办结率"), ("response_rate", "响应率"),
                    ("resolution_rate", "解决率"), ("satisfaction_rate", "满意率"))


@dataclass(frozen=True)
class BulletinPeriod:
    kind: str  # monthly | weekly
    key: str  # 2026-10 | 2026-W42
    start: date
    end: date  # inclusive

    @classmethod
    def parse(cls, key: str) -> BulletinPeriod:
        month = re.fullmatch(r"(\d{4})-(\d{2})", key)
        if month:
            start = date(int(month[1]), int(month[2]), 1)
            following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
            return cls("monthly", key, start, following - timedelta(days=1))
        week = re.fullmatch(r"(\d{4})-W(\d{2})", key)
        if week:
            start = date.fromisocalendar(int(week[1]), int(week[2]), 1)
            return cls("weekly", key, start, start + timedelta(days=6))
        raise ValueError(f"period {key!r}: use YYYY-MM for a month or YYYY-Www (ISO week) for a week")

    @property
    def label(self) -> str:
        if self.kind == "monthly":
            return f"{self.start.year}年{self.start.month}月"
        return f"{self.start.year}年第{self.start.isocalendar()[1]}周（{self.start:%m月%d日}—{self.end:%m月%d日}）"

    @property
    def days(self) -> list[str]:
        return [(self.start + timedelta(days=i)).isoformat() for i in range((self.end - self.start).days + 1)]


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""  # HTML: the configured wording with the figures marked up
    figures: dict[str, object] = field(default_factory=dict)  # raw values, also in data-figure attributes
    blocks: list[dict] = field(default_factory=list)


# -- formatting ----------------------------------------------------------------------------------------------
def pct(value) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def count(value) -> str:
    return "—" if value is None else f"{value:,.0f}"


def change(rate) -> str:
    if rate is None:
        return "无可比数据"
    if abs(rate) < 0.00005:
        return "持平"
    return f"{'上升' if rate > 0 else '下降'} {abs(rate) * 100:.2f}%"


def fill(template: str, shown: dict[str, str], raw: dict[str, object]) -> str:
    """The configured wording with each {placeholder} replaced by its value, marked up so tests and
    readers can trace it: <strong data-figure="key" data-value="raw">shown</strong>."""
    def one(match: re.Match) -> str:
        key = match.group(1)
        if key not in shown:
            raise KeyError(f"bulletin wording uses {{{key}}}, which this section does not provide "
                           f"(it provides: {', '.join(sorted(shown))})")
        value = raw.get(key)
        data = "" if value is None else f' data-value="{escape(str(value))}"'
        return f'<strong data-figure="{key}"{data}>{escape(shown[key])}</strong>'
    return re.sub(r"\{(\w+)\}", one, escape(template, quote=False))


def _table(caption: str, columns: list[str], rows: list[list], data_key: str | None = None) -> dict:
    return {"type": "table", "caption": caption, "columns": columns, "rows": rows, "data_key": data_key}


def _require(con, schema: str, table: str, what: str) -> None:
    if not has_table(con, schema, table):
        raise ValueError(f"{schema}.{table} is missing: the {what} stage has not run (the bulletin needs it)")


# -- indicator values ----------------------------------------------------------------------------------------
def values(con, period_type: str, period: str, grain: str, keys: tuple[str, ...] | None = None) -> dict:
    """{unit_code: {indicator_key: row}} from indicators.indicator_values."""
    query = ("select unit_code, unit_name, peer_group, indicator_key, numerator, denominator, value, mom_rate, "
             "yoy_rate, definition_version from indicators.indicator_values "
             "where period_type = ? and period = ? and grain = ?")
    rows = con.execute(query, [period_type, period, grain]).fetchall()
    result: dict[str, dict] = {}
    for unit, name, peer, key, numerator, denominator, value, mom, yoy, version in rows:
        if keys is None or key in keys:
            result.setdefault(unit, {"unit_name": name, "peer_group": peer})[key] = {
                "numerator": numerator, "denominator": denominator, "value": value, "mom_rate": mom,
                "yoy_rate": yoy, "version": version}
    return result


# -- sections ------------------------------------------------------------------------------------------------
def overview(con, period: BulletinPeriod, config: dict, spec: dict) -> Section:
    _require(con, "indicators", "indicator_values", "indicators")
    if period.kind == "monthly":
        city = values(con, "month", period.key, "city").get("city")
        if not city:
            raise ValueError(f"no indicators for {period.key}: compute them first "
                             f"(`citizen-voice indicators compute --period {period.key}`)")
        return _monthly_overview(con, period, config, spec, city)
    return _weekly_overview(con, period, config, spec)


def _monthly_overview(con, period, config, spec, city) -> Section:
    def v(key):
        return city.get(key, {}).get("value")

    direct = city["direct_answer_rate"]
    on_time = city["on_time_close_rate"]
    raw = {"received": v("received"), "daily_received": v("daily_received"),
           "received_mom": city["received"]["mom_rate"], "received_yoy": city["received"]["yoy_rate"],
           "direct_answered": direct["numerator"], "dispatched": direct["denominator"] - direct["numerator"],
           "due": on_time["denominator"], "overdue": city["overdue_rate"]["numerator"],
           **{key: v(key) for key in OVERVIEW_RATES}}
    shown = {"period_label": period.label, "city_name": config["city_name"], "received": count(raw["received"]),
             "daily_received": f"{raw['daily_received']:,.1f}", "received_mom": change(raw["received_mom"]),
             "received_yoy": change(raw["received_yoy"]), "direct_answered": count(raw["direct_answered"]),
             "dispatched": count(raw["dispatched"]), "due": count(raw["due"]), "overdue": count(raw["overdue"]),
             **{key: pct(raw[key]) for key in OVERVIEW_RATES}}
    section = Section(spec["key"], spec["title"], fill(spec["intro"], shown, raw), raw)

    trend = con.execute("""
        select period, value from indicators.indicator_values
        where period_type = 'month' and grain = 'city' and unit_code = 'city' and indicator_key = 'received'
          and period <= ? order by period desc limit 13""", [period.key]).fetchall()[::-1]
    section.blocks.append({"type": "chart", "svg": charts.line(
        [(p[2:], float(val), count(val)) for p, val in trend], "月度受理量趋势（近13个月）")})
    channels = values(con, "month", period.key, "channel", ("received",))
    channel_items = sorted(((u["unit_name"], u["received"]["value"]) for u in channels.values()), key=lambda x: -x[1])
    section.blocks.append({"type": "chart", "svg": charts.shares(channel_items, "受理渠道构成")})
    demand = con.execute("""
        select coalesce(t.demand_type_name, f.demand_type_code), count(*)
        from marts.fct_work_orders f left join reference.ref_demand_types t using (demand_type_code)
        where f.received_date between ? and ? group by all order by 2 desc""",
                         [period.start, period.end]).fetchall()
    section.blocks.append({"type": "chart", "svg": charts.shares(demand, "诉求类型构成")})
    section.figures["demand_types"] = dict(demand)
    section.blocks.append(_table("主要指标", ["指标", "本期", "环比", "同比", "版本"], [
        [con.execute("select any_value(indicator_name) from indicators.indicator_values where indicator_key = ?",
                     [key]).fetchone()[0], pct(v(key)), change(city[key]["mom_rate"]), change(city[key]["yoy_rate"]),
         f"v{city[key]['version']}"] for key in OVERVIEW_RATES if key in city], data_key="city_rates"))
    return section


def _weekly_overview(con, period, config, spec) -> Section:
    rows = con.execute("""
        select received_date, count(*) from marts.fct_work_orders
        where received_date between ? and ? group by all order by 1""", [period.start, period.end]).fetchall()
    if not rows:
        raise ValueError(f"no work orders received in {period.key}")
    received = sum(r[1] for r in rows)
    days = (period.end - period.start).days + 1
    raw = {"received": received, "daily_received": received / days}
    shown = {"period_label": period.label, "city_name": config["city_name"], "received": count(received),
             "daily_received": f"{received / days:,.1f}"}
    section = Section(spec["key"], spec["title"], fill(spec["intro"], shown, raw), raw)
    section.figures["daily"] = {d.isoformat(): n for d, n in rows}
    section.blocks.append({"type": "chart", "svg": charts.bars(
        [(f"{d:%m-%d}", float(n), count(n)) for d, n in rows], "每日受理量")})
    return section


def handling(con, period: BulletinPeriod, config: dict, spec: dict) -> Section:
    keys = tuple(k for k, _ in HANDLING_COLUMNS)
    section = Section(spec["key"], spec["title"], fill(spec["intro"], {}, {}))
    for grain, label in (("district", "各区"), ("department", "各承办单位")):
        units = values(con, "month", period.key, grain, keys)
        ordered = sorted(units.items(), key=lambda item: -(item[1].get("received", {}).get("value") or 0))
        rows = []
        for code, unit in ordered:
            row = [unit["unit_name"]] + [count(unit[k]["value"]) if k == "received" else pct(unit[k]["value"])
                                         if k in unit else "—" for k in keys]
            rows.append(row)
            section.figures[f"{grain}:{code}"] = {k: unit[k]["value"] for k in keys if k in unit}
        section.blocks.append(_table(f"{label}受理与办理情况", [label[1:] if grain == "district" else "承办单位",
                                                        *[name for _, name in HANDLING_COLUMNS]], rows,
                                     data_key=grain))
        if grain == "district":
            section.blocks.append({"type": "chart", "svg": charts.bars(
                [(u["unit_name"], u["on_time_close_rate"]["value"] or 0, pct(u["on_time_close_rate"]["value"]))
                 for _, u in ordered if "on_time_close_rate" in u], "各区按时办结率", max_value=1.0)})
    return section


def assessment(con, period: BulletinPeriod, config: dict, spec: dict) -> Section:
    from citizen_voice.indicators.scoring import load_scoring

    _require(con, "indicators", "rankings", "indicators")
    scheme = load_scoring().effective(period.start)
    if scheme is None:
        raise ValueError(f"no scoring scheme in force on {period.start}")
    rows = con.execute("""
        select grain, coalesce(peer_group, '区县') as peer_group, unit_code, unit_name, received, score, max_score,
               is_ranked, rank, ranked_units, flag, list, pulled_down_by
        from indicators.rankings where period = ?
        order by grain, peer_group, is_ranked desc, rank, unit_code""", [period.key]).fetchall()
    raw = {"min_orders": scheme.min_orders, "scheme_name": scheme.name}
    section = Section(spec["key"], spec["title"], fill(spec["intro"], {k: str(v) for k, v in raw.items()}, raw), raw)
    groups: dict[tuple[str, str], list] = {}
    for row in rows:
        groups.setdefault((row[0], row[1]), []).append(row)
    for (grain, peer), members in groups.items():
        caption = "各区综合考评" if grain == "district" else f"{peer}综合考评"
        section.blocks.append(_table(caption, ["排名", "单位", "受理量", "综合得分", "榜单", "失分主要原因"], [
            [str(r[8]) if r[7] else "不排名", r[3], count(r[4]), f"{r[5]:.2f}" if r[5] is not None else "—",
             r[11] or (r[10] or ""), r[12] or ""] for r in members], data_key=f"ranking:{grain}:{peer}"))
        for r in members:
            section.figures[f"score:{grain}:{r[2]}"] = r[5]
    red = [r[3] for r in rows if r[11] == "红榜"]
    black = [r[3] for r in rows if r[11] == "黑榜"]
    section.figures.update(red_list=red, black_list=black)
    return section


def hot_topics(con, period: BulletinPeriod, config: dict, spec: dict) -> Section:
    """Top-N level-3 topics of the city from text.hot_topics, with their keywords (the sub-issues citizens
    raise), representative titles and the districts where each concentrates."""
    _require(con, "text", "hot_topics", "text")
    grain = "month" if period.kind == "monthly" else "week"
    top_n = config["top_n"]
    rows = con.execute("""
        select rank, topic_code, topic_name, orders, growth_vs_previous, growth_vs_last_year, keywords,
               representative_titles
        from text.hot_topics where grain = ? and period_start = ? and area_level = 'city'
        order by rank limit ?""", [grain, period.start, top_n]).fetchall()
    if not rows:
        raise ValueError(f"text.hot_topics has no {grain} starting {period.start}: run the text stage first")
    areas = con.execute("""
        select h.topic_code, string_agg(d.district_name || ' ' || h.orders, '、' order by h.orders desc, h.area_code)
        from text.hot_topics h join marts.dim_district d on d.district_code = h.area_code and d.is_current
        where h.grain = ? and h.period_start = ? and h.area_level = 'district'
        group by h.topic_code""", [grain, period.start]).fetchall()
    areas_of = dict(areas)
    raw = {"top_n": top_n, "top_topic": rows[0][2], "top_count": rows[0][3]}
    shown = {"top_n": str(top_n), "top_topic": rows[0][2], "top_count": count(rows[0][3])}
    section = Section(spec["key"], spec["title"], fill(spec["intro"], shown, raw), raw)
    section.figures["topics"] = {r[1]: r[3] for r in rows}
    section.blocks.append({"type": "chart", "svg": charts.bars(
        [(r[2], float(r[3]), count(r[3])) for r in rows], f"热点诉求前{len(rows)}位")})
    section.blocks.append(_table("热点诉求", ["排名", "问题", "件数", "环比", "同比", "细分问题", "集中区域", "代表性诉求"], [
        [str(r[0]), r[2], count(r[3]), change(r[4]), change(r[5]), (r[6] or "").replace(",", "、"),
         _top_areas(areas_of.get(r[1])), scrub_text(r[7] or "").replace(" | ", "；")] for r in rows],
        data_key="hot_topics"))
    return section


def _top_areas(joined: str | None, keep: int = 3) -> str:
    return "、".join((joined or "").split("、")[:keep])


def warnings(con, period: BulletinPeriod, config: dict, spec: dict) -> Section:
    """Emerging issues (预警) first raised in the period, with their evidence, from text.early_warnings."""
    _require(con, "text", "early_warnings", "text")
    rows = con.execute("""
        select w.alert_id, w.level, coalesce(s.street_name, d.district_name, w.area_code) as area,
               w.category_name, w.first_alert_date, w.last_alert_date, w.observed, w.expected, w.ratio, w.p_value,
               w.example_orders
        from text.early_warnings w
        left join marts.dim_street s on w.level = 'street' and s.street_code = w.area_code and s.is_current
        left join marts.dim_district d on w.level = 'district' and d.district_code = w.area_code
              and d.is_current
        where w.first_alert_date between ? and ?
        order by w.first_alert_date, w.p_value""", [period.start, period.end]).fetchall()
    raw = {"warning_count": len(rows)}
    section = Section(spec["key"], spec["title"], fill(spec["intro"], {"warning_count": str(len(rows))}, raw), raw)
    section.figures["alerts"] = [r[0] for r in rows]
    if not rows:
        section.blocks.append({"type": "text", "text": spec.get("empty") or "无", "class": "empty"})
        return section
    section.blocks.append(_table("预警清单", ["首次预警", "区域", "问题", "窗口内件数", "基线预期", "倍数", "证据"], [
        [f"{r[4]:%m-%d}", r[2], r[3], count(r[6]), f"{r[7]:.1f}", f"{r[8]:.1f}",
         f"p={r[9]:.1e}；持续至{r[5]:%m-%d}；示例工单 {', '.join((r[10] or '').split(',')[:3])}"] for r in rows],
        data_key="warnings"))
    return section


def data_quality(con, period: BulletinPeriod, config: dict, spec: dict) -> Section:
    """The data-quality scorecard of the departments' systems (quality.scorecard_ranking)."""
    _require(con, "quality", "scorecard_ranking", "data-quality")
    rows = con.execute("""
        select rank, unit_code, unit_name, score, grade, completeness, validity, timeliness, consistency,
               interface_stability, received, quarantined, main_problems
        from quality.scorecard_ranking where period = ? order by rank, unit_code""", [period.key]).fetchall()
    section = Section(spec["key"], spec["title"], fill(spec["intro"], {}, {}))
    section.figures["scores"] = {r[1]: r[3] for r in rows}
    if not rows:
        section.blocks.append({"type": "text", "text": spec.get("empty") or "无", "class": "empty"})
        return section
    section.blocks.append(_table("数据质量评分排名", ["排名", "单位", "得分", "等级", "完整性", "有效性", "及时性",
                                                "一致性", "接口稳定性", "报送", "隔离", "主要问题"], [
        [str(r[0]), r[2], f"{r[3]:.1f}", r[4], *[pct(v) for v in r[5:10]], count(r[10]), count(r[11]), r[12]]
        for r in rows], data_key="data_quality"))
    return section


def cases(con, period: BulletinPeriod, config: dict, spec: dict) -> Section:
    """Typical cases: closed, resolved and satisfied orders of the period's top topics, masked again."""
    _require(con, "marts", "fct_work_order_texts", "text")
    rows = con.execute("""
        with top as (
            select topic_code, rank from text.hot_topics
            where grain = 'month' and period_start = ? and area_level = 'city'
        ), candidates as (
            select f.order_no, t.title, t.content, f.closed_at, f.resolution, f.satisfaction, top.rank,
                   coalesce(d.department_name, f.lead_dept_code) as department, c.category_name,
                   row_number() over (partition by top.rank order by f.received_at, f.order_no) as pick
            from marts.fct_work_orders f
            join marts.fct_work_order_texts t using (order_no)
            join top on top.topic_code = f.category_code
            left join marts.dim_department d on d.department_code = f.lead_dept_code
            left join marts.dim_category c on c.category_code = f.category_code
            where f.received_date between ? and ? and f.is_closed and f.resolution = '解决'
              and f.satisfaction = '满意' and not f.is_confidential
        )
        select * from candidates where pick = 1 order by rank limit ?""",
                       [period.start, period.start, period.end, config["cases"]]).fetchall()
    section = Section(spec["key"], spec["title"], fill(spec["intro"], {}, {}))
    items = [{"order_no": r[0], "title": scrub_text(r[1] or r[8] or ""), "summary": _shorten(scrub_text(r[2] or "")),
              "outcome": f"承办单位：{r[7]}；{r[3]:%m月%d日}办结，诉求{r[4]}，市民评价“{r[5]}”。"} for r in rows]
    section.figures["cases"] = [i["order_no"] for i in items]
    section.blocks.append({"type": "cases", "items": items})
    return section


def _shorten(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
