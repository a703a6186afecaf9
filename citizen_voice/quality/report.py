"""The data-quality report (数据质量报告) a department contact can read: a self-contained HTML file in
Chinese (inline CSS and SVG, no external resources) with the unit's score and rank, what failed and
how many records, masked examples, and the daily trend. Written to
CV_PUBLISHED/quality/<period>/quality_report[_<unit>].html.
"""

from __future__ import annotations

import html
import json
from datetime import date
from pathlib import Path

from citizen_voice import settings
from citizen_voice.quality import scorecard

SEVERITY = {"critical": "严重（记录已隔离）", "warning": "提示（记录保留）"}
DIMENSION = {"completeness": "完整性", "validity": "规范性", "consistency": "一致性", "timeliness": "及时性",
             "interface_stability": "接口稳定性", "schema": "表结构", "privacy": "个人信息"}
MAX_EXAMPLES = 3
MAX_DETAIL_ROWS = 60

STYLE = """
body{font-family:"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;margin:2em auto;max-width:1000px;
color:#222;line-height:1.6}h1{font-size:1.6em;border-bottom:3px solid #b71c1c;padding-bottom:.3em}
h2{font-size:1.2em;margin-top:1.6em;color:#b71c1c}table{border-collapse:collapse;width:100%;margin:.6em 0}
th,td{border:1px solid #ccc;padding:4px 8px;font-size:.9em;vertical-align:top}th{background:#f3f3f3}
td.n{text-align:right}.note{color:#666;font-size:.85em}.bad{color:#b71c1c;font-weight:bold}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:9em}
.card b{display:block;font-size:1.5em}code{background:#f6f6f6;padding:0 3px;word-break:break-all}
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _sources_of(unit: str | None) -> list[str] | None:
    if unit is None:
        return None
    from ingestion.registry import load_registry

    sources = [e.name for e in load_registry().sources if e.department == unit]
    if not sources:
        raise ValueError(f"unit {unit!r} owns no registered source system")
    return sources


def _month_bounds(period: str) -> tuple[date, date]:
    try:
        year, month = (int(p) for p in period.split("-"))
        start = date(year, month, 1)
    except ValueError as error:
        raise ValueError(f"period must be YYYY-MM, got {period!r}") from error
    end = date(year + (month == 12), month % 12 + 1, 1)
    return start, end


def gather(con, period: str, unit: str | None = None) -> dict:
    start, end = _month_bounds(period)
    sources = _sources_of(unit)
    source_filter = "" if sources is None else f"and source in ({', '.join(repr(s) for s in sources)})"
    counts = con.execute(f"""
        select source, sum(received), sum(clean), sum(quarantined), sum(quarantined_at_boundary)
        from quality.record_counts where record_day >= ? and record_day < ? {source_filter}
        group by source order by source""", [start, end]).fetchall()
    failures = con.execute(f"""
        select expectation, severity, dimension, count(distinct source || table_name || record_key) as records,
               list(raw_value order by record_key)[1:{MAX_EXAMPLES}] as examples,
               list(distinct source) as sources
        from (select * from quality.quarantine union all select * from quality.warnings)
        where record_day >= ? and record_day < ? {source_filter}
        group by expectation, severity, dimension order by severity, records desc, expectation""",
                           [start, end]).fetchall()
    details = con.execute(f"""
        select record_day, source, table_name, record_key, expectation, column_name, raw_value
        from quality.quarantine where record_day >= ? and record_day < ? {source_filter}
        order by record_day, source, record_key, expectation limit {MAX_DETAIL_ROWS}""", [start, end]).fetchall()
    descriptions = dict(con.execute("select expectation, description from quality.check_results").fetchall())
    from expectations.raw import BOUNDARY_RULES

    descriptions.update({name: text for name, _, text in BOUNDARY_RULES.values()})
    ranking = con.execute("select rank, unit_code, unit_name, score, grade, completeness_points, validity_points, "
                          "timeliness_points, consistency_points, interface_stability_points, received, quarantined, "
                          "main_problems from quality.scorecard_ranking where period = ? order by rank",
                          [period]).fetchall()
    unit_filter = "" if unit is None else "and unit_code = ?"
    trend = con.execute(f"""
        select day, unit_code, unit_name, score, received, quarantined from quality.scorecard_daily
        where day >= ? and day < ? {unit_filter} order by unit_code, day""",
                        [start, end, *([unit] if unit else [])]).fetchall()
    rubric = scorecard.load_rubric()
    return {"period": period, "unit": unit, "counts": counts, "failures": failures, "details": details,
            "descriptions": descriptions, "ranking": ranking, "trend": trend, "rubric": rubric}


def _trend_svg(trend: list[tuple], width: int = 900, height: int = 220) -> str:
    if not trend:
        return "<p class='note'>本期无数据。</p>"
    days = sorted({row[0] for row in trend})
    units = sorted({(row[1], row[2]) for row in trend})
    colours = ["#b71c1c", "#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f"]
    left, bottom, top = 40, 30, 10

    def x(day):
        return left + (days.index(day) * (width - left - 10) / max(1, len(days) - 1))

    def y(score):
        return top + (100 - score) * (height - top - bottom) / 100

    parts = [f'<svg width="{width}" height="{height + 20 * len(units)}" '
             'role="img" aria-label="每日得分趋势">']
    for mark in (0, 60, 80, 100):
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y(mark):.1f}" y2="{y(mark):.1f}" stroke="#ddd"/>'
                     f'<text x="4" y="{y(mark) + 4:.1f}" font-size="11">{mark}</text>')
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="11">{_e(days[0])}</text>'
                 f'<text x="{width - 90}" y="{height - 8}" font-size="11">{_e(days[-1])}</text>')
    for index, (code, name) in enumerate(units):
        colour = colours[index % len(colours)]
        points = " ".join(f"{x(r[0]):.1f},{y(r[3]):.1f}" for r in trend if r[1] == code and r[3] is not None)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{left}" y="{height + 14 + 20 * index}" font-size="12" fill="{colour}">'
                     f'— {_e(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(data: dict) -> str:
    period, unit = data["period"], data["unit"]
    descriptions = data["descriptions"]
    unit_name = next((r[2] for r in data["ranking"] if r[1] == unit), None) or \
        next((r[2] for r in data["trend"] if r[1] == unit), unit)
    title = f"数据质量报告 · {period}" + (f" · {unit_name}" if unit else "")
    received = sum(r[1] or 0 for r in data["counts"])
    clean = sum(r[2] or 0 for r in data["counts"])
    quarantined = sum(r[3] or 0 for r in data["counts"])
    out = [f"<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'><title>{_e(title)}</title>"
           f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>",
           "<p class='note'>本报告由市民之声数据平台根据各单位报送的工单数据自动生成。被隔离的记录不进入统计分析和公报；"
           "示例中的个人信息已脱敏。</p>",
           "<div class='cards'>",
           f"<div class='card'>接收记录<b data-figure=\"received\">{received:,}</b></div>",
           f"<div class='card'>合格记录<b data-figure=\"clean\">{clean:,}</b></div>",
           f"<div class='card'>隔离记录<b class='bad' data-figure=\"quarantined\">{quarantined:,}</b></div>"]
    own = [r for r in data["ranking"] if unit is None or r[1] == unit]
    if unit and own:
        out.append(f"<div class='card'>综合得分<b data-figure=\"score\">{own[0][3]:.2f}</b>{_e(own[0][4])}，"
                   f"第 {own[0][0]} 名</div>")
    out.append("</div>")

    out.append("<h2>一、数据质量排名</h2>")
    if data["ranking"]:
        dims = data["rubric"].dimensions
        out.append("<table><tr><th>排名</th><th>单位</th><th>综合得分</th><th>等级</th>"
                   + "".join(f"<th>{_e(dims[d].name)}</th>" for d in scorecard.DIMENSIONS)
                   + "<th>接收记录</th><th>隔离记录</th><th>主要问题</th></tr>")
        for r in data["ranking"]:
            style = " style='background:#fff3e0'" if r[1] == unit else ""
            cells = "".join(f"<td class='n'>{'—' if v is None or v != v else f'{v:.1f}'}</td>" for v in r[5:10])
            out.append(f"<tr{style}><td class='n'>{r[0]}</td><td>{_e(r[2])}</td><td class='n'>{r[3]:.2f}</td>"
                       f"<td>{_e(r[4])}</td>{cells}<td class='n'>{int(r[10]):,}</td><td class='n'>{int(r[11]):,}</td>"
                       f"<td>{_e(r[12])}</td></tr>")
        out.append("</table>")
        rubric = data["rubric"]
        out.append("<p class='note'>评分细则（第 " + str(rubric.version) + " 版）："
                   + "；".join(f"{d.name}权重 {d.weight:.0%}，{d.description}" for d in rubric.dimensions.values())
                   + f"。各项达到目标值得满分，低于下限得 0 分；本月记录少于 {rubric.min_records_to_rank} 条的单位不参与排名。</p>")
    else:
        out.append("<p class='note'>本期暂无排名。</p>")

    out.append("<h2>二、发现的问题</h2>")
    if data["failures"]:
        out.append("<table><tr><th>检查项</th><th>类别</th><th>严重程度</th><th>记录数</th><th>示例（已脱敏）</th></tr>")
        for expectation, severity, dimension, records, examples, _ in data["failures"]:
            shown = "<br>".join(f"<code>{_e(v)}</code>" for v in (examples or []) if v is not None)
            out.append(f"<tr><td>{_e(descriptions.get(expectation) or expectation)}<br>"
                       f"<span class='note'>{_e(expectation)}</span></td><td>{_e(DIMENSION.get(dimension, dimension))}"
                       f"</td><td>{_e(SEVERITY.get(severity, severity))}</td><td class='n'>{records:,}</td>"
                       f"<td>{shown}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>本期未发现数据质量问题。</p>")

    out.append("<h2>三、每日得分趋势</h2>")
    out.append(_trend_svg(data["trend"]))

    out.append("<h2>四、被隔离的记录</h2>")
    if data["details"]:
        out.append("<table><tr><th>日期</th><th>系统</th><th>记录</th><th>问题</th><th>原始值（已脱敏）</th></tr>")
        for day, source, table, key, expectation, column, value in data["details"]:
            out.append(f"<tr><td>{_e(day)}</td><td>{_e(source)}.{_e(table)}</td><td><code>{_e(key)}</code></td>"
                       f"<td>{_e(descriptions.get(expectation) or expectation)}"
                       f"{'（' + _e(column) + '）' if column else ''}</td><td><code>{_e(value)}</code></td></tr>")
        out.append("</table>")
        out.append(f"<p class='note'>最多列出 {MAX_DETAIL_ROWS} 条。请核实并在本单位系统中更正后重新报送。</p>")
    else:
        out.append("<p>本期没有被隔离的记录。</p>")
    out.append("<p class='note'>每日统计中“接收 = 合格 + 隔离”对每个系统、每一天成立。</p></body></html>")
    return "\n".join(out)


def write_report(con, period: str, unit: str | None = None, out_dir: Path | None = None) -> Path:
    data = gather(con, period, unit)
    folder = Path(out_dir or settings.published_dir() / "quality") / period
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"quality_report_{unit}.html" if unit else "quality_report.html")
    path.write_text(render(data), encoding="utf-8")
    (folder / (path.stem + ".json")).write_text(json.dumps(
        {"period": period, "unit": unit, "received": sum(r[1] or 0 for r in data["counts"]),
         "clean": sum(r[2] or 0 for r in data["counts"]), "quarantined": sum(r[3] or 0 for r in data["counts"])},
        ensure_ascii=False, indent=1), encoding="utf-8")
    return path
