"""Indicators computed from the marts."""


import dagster as dg

from citizen_voice import warehouse
from citizen_voice.indicators import district_monthly
from orchestration.defs import WAREHOUSE_POOL


@dg.asset(
    key=["indicators", "district_monthly"],
    deps=[dg.AssetKey(["marts", "fct_work_orders"]), dg.AssetKey(["marts", "dim_district"])],
    group_name="indicators",
    pool=WAREHOUSE_POOL,
    description="受理量 and 按时办结率 per district and month (and for the whole city).",
)
def district_monthly_indicators(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        rows = district_monthly.compute(con)
        latest = con.execute(
            f"select period, received, on_time_close_rate from {district_monthly.TABLE} "
            "where grain = 'city' order by period desc limit 1").fetchone()
    return dg.MaterializeResult(metadata={
        "row_count": rows,
        "definition_version": district_monthly.DEFINITION_VERSION,
        "latest_period": latest[0] if latest else None,
        "latest_city_received": latest[1] if latest else None,
        "latest_city_on_time_close_rate": latest[2] if latest else None,
    })


def build_defs() -> dg.Definitions:
    return dg.Definitions(assets=[district_monthly_indicators])
