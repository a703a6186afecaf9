"""Open data for the public: a de-identified work-order dataset and monthly aggregates.

De-identification (GB/T 37964 style; decisions):
* direct identifiers never appear: no names, phones, ID numbers, no caller keys, no free text
  (config validation refuses caller columns whatever publish.yaml says);
* orders whose caller asked for confidentiality (是否保密) are left out of the row-level dataset
  (`exclude_confidential`), but counted in the aggregates;
* places are coarsened to the community (社区/村) — there are no addresses or coordinates — and
  where a community has fewer than `suppression_threshold` orders in a month (per value of the
  `community_cell_by` columns too, if configured), those orders' community is blanked (coarsened
  to the street);
* times are truncated to `timestamp_precision` (default the hour), Beijing time (UTC+08:00);
* aggregates: a row with fewer orders than the threshold has all counts withheld, and any other
  count between 1 and threshold-1 is withheld too (`suppressed` marks the row). Only this primary
  suppression is applied: totals are not published beside the cells, so withheld cells cannot be
  recovered by subtraction within one file.

Output under <published>/open/: the row-level dataset in month parts by the month an order was
received (Beijing time; the month the community suppression counts in):
work_orders/month=YYYY-MM/part.parquet|.csv; one file pair per aggregate, data_dictionary.csv|.json,
manifest.json (per part: rows, fingerprint, gated_against). Built aside, gated, then swapped in; on a
rerun only the months whose rows changed are written and fully gated (files.PartWriter).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from citizen_voice import settings
from citizen_voice.publish import files, gate
from citizen_voice.publish.config import PublishConfig, load_config
from citizen_voice.publish.files import PartsReport

DATASET = "work_orders"
HIDDEN = ("_coarsened", "_month")  # selected by dataset_sql for the rules and parts, not published
ALIAS_MODELS = {"o": "fct_work_orders", "cat": "dim_category", "dist": "dim_district", "st": "dim_street",
                "com": "dim_community", "dept": "dim_department", "ch": "dim_channel"}
SOURCE_SQL = """
    from marts.fct_work_orders o
    left join marts.dim_category cat on cat.category_code = o.category_code
    left join marts.dim_district dist on dist.district_code = o.district_code
    left join marts.dim_street st on st.street_code = o.street_code
    left join marts.dim_community com on com.community_code = o.community_code
    left join marts.dim_department dept on dept.department_code = o.lead_dept_code
    left join marts.dim_channel ch on ch.channel_code = o.channel_code
"""
MEASURES = {
    "received": "count(*)",
    "closed": "count(*) filter (where _closed)",
    "closed_on_time": "count(*) filter (where _closed_on_time)",
    "overdue": "count(*) filter (where _overdue)",
    "satisfied": "count(*) filter (where _satisfaction in ('满意', '基本满意'))",
    "unsatisfied": "count(*) filter (where _satisfaction = '不满意')",
}
TIME_ZONE_NOTE = "Times are Beijing time (Asia/Shanghai, UTC+08:00)."


@dataclass
class OpenDataReport:
    folder: Path
    rows: int = 0
    excluded_confidential: int = 0
    coarsened_to_street: int = 0
    aggregates: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> rows, suppressed rows
    files: int = 0
    parts: PartsReport = field(default_factory=PartsReport)
    seconds: float = 0.0


def community_columns(config: PublishConfig) -> list[str]:
    return [name for name, source in config.open_data.columns.items()
            if source == "o.community_code" or source.startswith("com.")]


def create_source_view(con: duckdb.DuckDBPyConnection, config: PublishConfig) -> None:
    """Temp view `open_source`: every valid order with the published column names (not yet
    truncated or coarsened), plus the fields the rules need."""
    selected = ", ".join(f"{source} as {name}" for name, source in config.open_data.columns.items())
    con.execute(f"""create or replace temp view open_source as
        select {selected}, o.is_confidential as _confidential,
               o.community_code as _community, strftime(o.received_at, '%Y-%m') as period,
               o.is_closed as _closed, o.is_closed_on_time as _closed_on_time, o.is_overdue as _overdue,
               o.satisfaction as _satisfaction
        {SOURCE_SQL}""")


def dataset_sql(con: duckdb.DuckDBPyConnection, config: PublishConfig) -> str:
    rules = config.open_data
    types = dict(con.execute("select column_name, column_type from (describe open_source)").fetchall())
    community = set(community_columns(config))
    k = rules.suppression_threshold
    cell = ", ".join(["_community", "period", *rules.community_cell_by])
    small = f"count(*) over (partition by {cell}) < {k}"
    selected = []
    for name in rules.columns:
        expression = name
        if types[name].startswith("TIMESTAMP"):
            expression = f"date_trunc('{rules.timestamp_precision}', {name})"
            if rules.timestamp_precision == "day":
                expression = f"cast({expression} as date)"
        if name in community:
            expression = f"case when {small} then null else {expression} end"
        selected.append(f"{expression} as {name}")
    where = "where not coalesce(_confidential, false)" if rules.exclude_confidential else ""
    return (f"select {', '.join(selected)}, {small} as _coarsened, period as _month "
            f"from open_source {where} order by order_no")


def aggregate_sql(group_by: tuple[str, ...], threshold: int) -> str:
    keys = ", ".join(group_by)
    measures = ", ".join(f"{expr} as {name}" for name, expr in MEASURES.items())
    withheld = " or ".join(f"{name} between 1 and {threshold - 1}" for name in MEASURES)
    cells = ", ".join(
        f"case when received < {threshold} or {name} between 1 and {threshold - 1} then null else {name} end"
        f" as {name}" for name in MEASURES)
    return f"""
        with counts as (
            select {keys}, {measures}
            from open_source
            group by all
        )
        select {keys}, {cells}, (received < {threshold} or {withheld}) as suppressed
        from counts order by all"""


def dictionary_rows(config: PublishConfig, tables: dict[str, list[tuple[str, str]]]) -> list[tuple]:
    sources = {name: (ALIAS_MODELS[source.split(".")[0]], source.split(".")[1])
               for name, source in config.open_data.columns.items()}
    rows = []
    for table, columns in tables.items():
        described = files.describe_columns(columns, sources, config.dictionary)
        rows += [(table, *row) for row in described]
    return rows


def publish_open_data(con: duckdb.DuckDBPyConnection, published: Path | None = None,
                      config: PublishConfig | None = None, known: gate.KnownValues | None = None) -> OpenDataReport:
    """Write the open dataset and aggregates, gate them, and swap them in as <published>/open. Month
    parts whose rows are unchanged since the current publication are carried over."""
    started = time.perf_counter()
    config = config or load_config()
    known = known if known is not None else gate.load_known_values()
    rules = config.open_data
    target = Path(published or settings.published_dir()) / "open"
    report = OpenDataReport(folder=target)
    staging = files.staging_folder(target)
    try:
        create_source_view(con, config)
        sql = dataset_sql(con, config)
        writer = files.PartWriter(con, known)
        previous = files.previous_manifest(target / "manifest.json").get(DATASET, {}).get("parts", {})
        parts = writer.write(sql, [], DATASET, "_month", {None: files.Target(staging, target, previous)},
                             hidden=HIDDEN)[None]
        report.rows = sum(p["rows"] for p in parts.values())
        report.coarsened_to_street = con.execute(f"select count(*) filter (where _coarsened) from ({sql})").fetchone()[0]
        report.excluded_confidential = con.execute(
            "select count(*) from open_source where _confidential").fetchall()[0][0] if rules.exclude_confidential else 0
        described = {DATASET: [(f.name, str(f.type)) for f in writer.empty_schema(sql, [], HIDDEN)]}
        for aggregate in rules.aggregates:
            table = con.sql(aggregate_sql(aggregate.group_by, rules.suppression_threshold)).to_arrow_table()
            files.write_table(table, staging, aggregate.name)
            report.aggregates[aggregate.name] = {
                "rows": table.num_rows, "suppressed_rows": table.column("suppressed").to_pylist().count(True)}
            described[aggregate.name] = [(f.name, str(f.type)) for f in table.schema]
        files.write_dictionary(dictionary_rows(config, described), staging)
        files.write_json({
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "suppression_threshold": rules.suppression_threshold,
            "timestamp_precision": rules.timestamp_precision,
            "time_zone": TIME_ZONE_NOTE,
            DATASET: {"rows": report.rows, "excluded_confidential": report.excluded_confidential,
                      "community_coarsened_to_street": report.coarsened_to_street,
                      "layout": f"{DATASET}/{files.MONTH_KEY}=YYYY-MM/part.parquet|.csv "
                                "(by the month received, Beijing time)",
                      "parts": parts},
            "aggregates": report.aggregates,
        }, staging / "manifest.json")
        report.parts = writer.gate(staging)
        report.files = sum(1 for p in staging.rglob("*") if p.is_file())
        files.replace_folder(staging, target)
    except BaseException:
        files.discard_folder(staging)
        raise
    finally:
        con.execute("drop view if exists open_source")
    report.seconds = round(time.perf_counter() - started, 3)
    return report
