"""Published outputs: the monthly 市民之声 bulletin."""


import dagster as dg

from citizen_voice import settings, warehouse
from citizen_voice.bulletin.render import render_bulletin
from citizen_voice.indicators import district_monthly
from orchestration.defs import WAREHOUSE_POOL


class BulletinConfig(dg.Config):
    period: str | None = None  # YYYY-MM; default: the latest complete month in the data


def latest_complete_period(con) -> str:
    periods = [r[0] for r in con.execute(
        f"select distinct period from {district_monthly.TABLE} order by period").fetchall()]
    if not periods:
        raise ValueError("no indicator periods yet")
    # The newest month is complete only if data reaches its last day.
    last_day = con.execute("select max(received_date) from marts.fct_work_orders").fetchone()[0]
    newest = periods[-1]
    complete = (last_day + __import__("datetime").timedelta(days=1)).strftime("%Y-%m") != newest
    return newest if complete or len(periods) == 1 else periods[-2]


@dg.asset(
    key=["published", "bulletin_monthly"],
    deps=[dg.AssetKey(["indicators", "district_monthly"])],
    group_name="publish",
    pool=WAREHOUSE_POOL,
    description="The monthly 市民之声 bulletin (self-contained HTML) under data/published/bulletins/<period>/.",
)
def bulletin_monthly(context: dg.AssetExecutionContext, config: BulletinConfig) -> dg.MaterializeResult:
    with warehouse.connect(read_only=True) as con:
        period = config.period or latest_complete_period(con)
        path = render_bulletin(con, period, settings.published_dir() / "bulletins")
    return dg.MaterializeResult(metadata={"period": period, "path": dg.MetadataValue.path(str(path)),
                                          "bytes": path.stat().st_size})


def build_defs() -> dg.Definitions:
    return dg.Definitions(assets=[bulletin_monthly])
