"""Published outputs: the monthly 市民之声 bulletin, department shares, open data, the BI snapshot and
PostgreSQL serving. The logic lives in citizen_voice.bulletin and citizen_voice.publish; every
publish asset runs the privacy gate on its own output (a hit fails the asset). They read the
warehouse, so they run in the warehouse pool: no writer holds the file while they read it."""

import datetime

import dagster as dg

from citizen_voice import settings, warehouse
from citizen_voice.bulletin import render
from citizen_voice.publish import open_data, postgres, shares, snapshot
from orchestration.defs import WAREHOUSE_POOL
from orchestration.defs.partitions import MONTHLY, WEEKLY

MARTS = ["fct_work_orders", "fct_work_order_events", "dim_district", "dim_street", "dim_community",
         "dim_department", "dim_category", "dim_channel", "dim_date"]
MART_KEYS = [dg.AssetKey(["marts", name]) for name in MARTS]
INDICATOR_KEYS = [dg.AssetKey(["indicators", "district_monthly"])]


BULLETIN_INPUTS = [dg.AssetKey(k) for k in (
    ["indicators", "monthly"], ["indicators", "daily"], ["text", "hot_topics"], ["text", "early_warnings"],
    ["quality", "scorecard"], ["marts", "fct_work_order_texts"], ["marts", "fct_work_orders"])]


def parts_metadata(parts) -> dict[str, int]:
    """How much of a month-partitioned publication was rewritten (files.PartsReport)."""
    return {"parts_written": parts.written, "parts_carried_over": parts.carried,
            "gate_files_scanned": parts.gated_files, "gate_files_rescanned_new_known_values": parts.rescanned_files,
            "gate_files_unchanged_not_rescanned": parts.unscanned_files}


def publish_bulletin(context: dg.AssetExecutionContext, period: str) -> dg.MaterializeResult:
    with warehouse.connect(read_only=True) as con:
        done = render.publish_bulletin(con, period, settings.published_dir() / "bulletins")
    return dg.MaterializeResult(metadata={
        "period": period, "html": dg.MetadataValue.path(str(done["html"])),
        "pdf": dg.MetadataValue.path(str(done["pdf"])), "html_bytes": done["html"].stat().st_size,
        "pdf_bytes": done["pdf"].stat().st_size, "privacy_gate_files": done["privacy_gate_files"]})


@dg.asset(
    key=["publish", "bulletin_monthly"],
    deps=BULLETIN_INPUTS,
    partitions_def=MONTHLY,
    group_name="publish",
    pool=WAREHOUSE_POOL,
    description="The monthly 市民之声 bulletin (HTML that works offline + PDF) under "
                "<published>/bulletins/<YYYY-MM>/; sections and wording from citizen_voice/bulletin/bulletin.yaml.",
)
def bulletin_monthly(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return publish_bulletin(context, context.partition_key[:7])


@dg.asset(
    key=["publish", "bulletin_weekly"],
    deps=BULLETIN_INPUTS,
    partitions_def=WEEKLY,
    group_name="publish",
    pool=WAREHOUSE_POOL,
    description="The weekly brief (本周概况, 热点, 预警) under <published>/bulletins/<YYYY-Www>/.",
)
def bulletin_weekly(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    year, week, _ = datetime.date.fromisoformat(context.partition_key).isocalendar()
    return publish_bulletin(context, f"{year}-W{week:02d}")


@dg.asset(
    key=["publish", "department_shares"],
    deps=[*MART_KEYS, *INDICATOR_KEYS],
    group_name="publish",
    pool=WAREHOUSE_POOL,
    description="Each department's own work orders, events and indicators (Parquet, CSV with BOM, data "
                "dictionary) under <published>/shares/<department_code>/; row-level tables in month parts, "
                "rewritten only when their rows change; privacy-gated.",
)
def department_shares(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    with warehouse.connect(read_only=True) as con:
        report = shares.publish_shares(con)
    return dg.MaterializeResult(metadata={
        "folder": dg.MetadataValue.path(str(report.folder)), "departments": report.departments,
        **{f"rows_{name}": rows for name, rows in report.rows.items()},
        "skipped_tables": ", ".join(report.skipped_tables) or "none",
        "privacy_gate_files": report.files, **parts_metadata(report.parts), "seconds": report.seconds})


@dg.asset(
    key=["publish", "open_data"],
    deps=MART_KEYS,
    group_name="publish",
    pool=WAREHOUSE_POOL,
    description="The de-identified open work-order dataset and suppressed aggregates under <published>/open/ "
                "(work_orders in month parts, rewritten only when their rows change; served by "
                "`citizen-voice publish open311`); privacy-gated.",
)
def open_data_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    with warehouse.connect(read_only=True) as con:
        report = open_data.publish_open_data(con)
    return dg.MaterializeResult(metadata={
        "folder": dg.MetadataValue.path(str(report.folder)), "row_count": report.rows,
        "excluded_confidential": report.excluded_confidential,
        "community_coarsened_to_street": report.coarsened_to_street,
        **{f"{name}_suppressed_rows": a["suppressed_rows"] for name, a in report.aggregates.items()},
        "privacy_gate_files": report.files, **parts_metadata(report.parts), "seconds": report.seconds})


@dg.asset(
    key=["publish", "serving_snapshot"],
    deps=[*MART_KEYS, *INDICATOR_KEYS],
    group_name="publish",
    pool=WAREHOUSE_POOL,
    description="Read-only DuckDB snapshot of the marts and indicators for BI tools at "
                "<published>/serving/warehouse.duckdb: built on a copy of the previous one (changed tables "
                "copied, or their changed rows replaced), privacy-gated, swapped in atomically.",
)
def serving_snapshot(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    report = snapshot.publish_snapshot(run_id=context.run_id)
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(report.path)), "snapshot_id": report.snapshot_id,
        "schemas": ", ".join(report.schemas), "tables": len(report.tables), "bytes": report.bytes,
        "gated_tables": len(report.gated_tables), "rescanned_tables": len(report.rescanned_tables),
        "unscanned_tables": len(report.unscanned_tables), "built_on_previous_snapshot": report.reused_previous,
        "tables_copied_whole": len(report.copied_tables),
        "tables_rows_replaced": ", ".join(f"{t} (-{d}, +{i})" for t, (d, i) in report.replaced_rows.items()) or "none",
        "seconds": report.seconds})


@dg.asset(
    key=["publish", "postgres_serving"],
    deps=[*MART_KEYS, *INDICATOR_KEYS],
    group_name="publish",
    pool=WAREHOUSE_POOL,
    output_required=False,
    description="The marts and indicators in PostgreSQL ($CV_SERVING_PG_URL) with a read role per department "
                "(row-level security) and an analyst role; skipped (not materialized) when the URL is not set.",
)
def postgres_serving(context: dg.AssetExecutionContext):
    url = postgres.serving_url()
    if not url:
        message = "skipped: PostgreSQL serving not configured (set CV_SERVING_PG_URL)"
        context.log.warning(message)
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, metadata={"status": message}))
        return
    report = postgres.publish_postgres(url)
    yield dg.MaterializeResult(metadata={
        "tables": len(report.tables), "rows": sum(report.tables.values()), "policies": report.policies,
        "login_roles": ", ".join(r for r, state in report.roles.items() if state == "login") or "none",
        "seconds": report.seconds})


def build_defs() -> dg.Definitions:
    return dg.Definitions(assets=[bulletin_monthly, bulletin_weekly, department_shares, open_data_asset, serving_snapshot,
                                  postgres_serving])
