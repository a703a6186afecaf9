"""Indicators computed from the marts (citizen_voice.indicators): monthly and daily partitions, and the
unpartitioned `indicators/district_monthly` that brings every month present in the data up to date
(what `make demo` and the bulletin use). Run without a partition key (materialize_all's global job), the
partitioned assets fall back to every month present (only those out of date) and the newest day."""


import dagster as dg

from citizen_voice import warehouse
from citizen_voice.indicators import engine, service
from citizen_voice.indicators.periods import Period
from orchestration.defs import WAREHOUSE_POOL
from orchestration.defs.partitions import DAILY, MONTHLY

UPSTREAM = [dg.AssetKey(["marts", "fct_work_orders"]), dg.AssetKey(["marts", "dim_district"]),
            dg.AssetKey(["marts", "dim_street"]), dg.AssetKey(["marts", "dim_department"]),
            dg.AssetKey(["marts", "dim_category"]), dg.AssetKey(["marts", "dim_channel"]),
            dg.AssetKey(["text", "repeat_demands"])]


def _metadata(summary: dict) -> dict:
    metadata = {"periods_computed": len(summary["computed"]), "periods_up_to_date": len(summary["skipped"]),
                "row_count": summary["rows"], "seconds": summary["seconds"],
                "warnings": "; ".join(summary["warnings"]) or "none"}
    if summary.get("newest_period"):
        metadata["period"] = summary["newest_period"]
        metadata["definition_versions"] = dg.MetadataValue.json(summary["versions"])
        for key, value in summary["city"].items():
            metadata[f"city_{key}"] = dg.MetadataValue.float(float(value)) if value is not None else None
    for period, scored in summary["scored"].items():
        metadata[f"ranked_units_{period}"] = f"{scored['ranked']} of {scored['units']} (scheme v{scored['scheme']})"
    return {k: v for k, v in metadata.items() if v is not None}


@dg.asset(
    key=["indicators", "monthly"],
    deps=UPSTREAM,
    partitions_def=MONTHLY,
    group_name="indicators",
    pool=WAREHOUSE_POOL,
    description="Every indicator of the catalogue for one month at every grain (indicators.indicator_values), "
                "with 环比/同比, scores and rankings (indicators.scores, indicators.rankings).",
)
def monthly_indicators(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        if context.has_partition_key:
            summary = service.refresh(con, [Period.parse(context.partition_key, "month")], period_type="month")
        else:  # an unpartitioned run of every asset (the demo): every month present, those out of date
            summary = service.refresh(con, None, period_type="month", only_stale=True)
    return dg.MaterializeResult(metadata=_metadata(summary))


@dg.asset(
    key=["indicators", "daily"],
    deps=UPSTREAM,
    partitions_def=DAILY,
    group_name="indicators",
    pool=WAREHOUSE_POOL,
    description="The operational view: every indicator for one day at every grain (period_type 'day').",
)
def daily_indicators(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        if context.has_partition_key:
            periods = [Period.parse(context.partition_key, "day")]
        else:  # an unpartitioned run of every asset (the demo): the newest day in the data
            periods = engine.periods_in_data(con, "day")[-1:]
        summary = service.refresh(con, periods, period_type="day")
    return dg.MaterializeResult(metadata=_metadata(summary))


@dg.asset(
    key=["indicators", "district_monthly"],
    deps=UPSTREAM,
    group_name="indicators",
    pool=WAREHOUSE_POOL,
    description="Every month present in the data brought up to date (months whose definitions or data changed "
                "are recomputed), with scores; keeps the view indicators.district_monthly (受理量, 按时办结率 per "
                "district) the bulletin reads.",
)
def district_monthly_indicators(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        summary = service.refresh(con, None, period_type="month", only_stale=True)
    for warning in summary["warnings"]:
        context.log.warning(warning)
    return dg.MaterializeResult(metadata=_metadata(summary))


def build_defs() -> dg.Definitions:
    return dg.Definitions(assets=[monthly_indicators, daily_indicators, district_monthly_indicators])
