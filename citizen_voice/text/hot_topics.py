"""Hot topics (热点诉求): the top-N topics per day, week and month, city-wide and per district and street.

A topic is a level-3 category of the tree (the recorded one); invalid calls (无效) are left out.
Each row carries the count, the previous period's count and growth, the same period a year before
(day - 1 year, week - 52 weeks, month - 12 months) and its growth, the topic's keywords
(text.topic_keywords) and up to three representative titles: the most frequent titles of the
topic in that area and period, scrubbed again with citizen_voice.privacy (titles are already
masked at ingestion; this is the publishing-side guard). The table is recomputed on each run.
"""

from __future__ import annotations

from citizen_voice.privacy import scrub_text
from citizen_voice.text.keywords import TOPIC_TABLE
from citizen_voice.text.tokens import SCHEMA, TEXTS, ensure_schema

TABLE = f"{SCHEMA}.hot_topics"
TOP_N = 10
TITLES = 3
GRAINS = {  # grain -> (period start, previous period start, same period last year)
    "day": ("received_date", "period_start - interval 1 day", "period_start - interval 1 year"),
    "week": ("date_trunc('week', received_date)", "period_start - interval 7 day", "period_start - interval 364 day"),
    "month": ("date_trunc('month', received_date)", "period_start - interval 1 month",
              "period_start - interval 1 year"),
}
AREAS = {"city": "'city'", "district": "district_code", "street": "street_code"}
SCRUB_FUNCTION = "cv_scrub_title"


def _scrub_title(title: str) -> str:
    return scrub_text(title)


def refresh(con, top_n: int = TOP_N) -> dict:
    ensure_schema(con)
    counts = " union all ".join(
        f"select '{grain}' as grain, cast({period} as date) as period_start, '{level}' as area_level, "
        f"{area} as area_code, category_code as topic_code, count(*) as orders from hot_base "
        f"where {area} is not null group by all"
        for grain, (period, _, _) in GRAINS.items() for level, area in AREAS.items())
    previous = " union all ".join(
        f"select grain, period_start, area_level, area_code, topic_code, orders, "
        f"cast({prev} as date) as previous_start, cast({last_year} as date) as last_year_start "
        f"from hot_counts where grain = '{grain}'"
        for grain, (_, prev, last_year) in GRAINS.items())
    con.execute("begin")
    try:
        con.execute(f"""create or replace temp table hot_base as
            select order_no, received_date, category_code, district_code, street_code, title
            from {TEXTS} where demand_type_code is distinct from 'WX' and received_date is not null""")
        con.execute(f"create or replace temp table hot_counts as {counts}")
        con.execute(f"""
            create or replace temp table hot_ranked as
            with shifted as ({previous}),
            joined as (
                select s.*, p.orders as previous_orders, y.orders as last_year_orders,
                       exists (select 1 from hot_counts h where h.grain = s.grain
                               and h.period_start = s.last_year_start) as has_last_year
                from shifted s
                left join hot_counts p on p.grain = s.grain and p.area_level = s.area_level
                    and p.area_code = s.area_code and p.topic_code = s.topic_code and p.period_start = s.previous_start
                left join hot_counts y on y.grain = s.grain and y.area_level = s.area_level
                    and y.area_code = s.area_code and y.topic_code = s.topic_code and y.period_start = s.last_year_start
            )
            select *, row_number() over (partition by grain, period_start, area_level, area_code
                                         order by orders desc, topic_code) as rank
            from joined qualify rank <= {int(top_n)}""")
        # the most frequent titles of each ranked topic, one grain and area level at a time (the title
        # counts of all nine at once would be held together)
        con.execute("""create or replace temp table hot_titles (grain varchar, period_start date, area_level varchar,
                       area_code varchar, topic_code varchar, title varchar, title_rank bigint)""")
        for grain, (period, _, _) in GRAINS.items():
            for level, area in AREAS.items():
                con.execute(f"""
                    insert into hot_titles
                    with t as (
                        select '{grain}' as grain, cast({period} as date) as period_start, '{level}' as area_level,
                               {area} as area_code, category_code as topic_code, title, count(*) as n from hot_base
                        where {area} is not null and title is not null group by all
                    ),
                    kept as (
                        select t.* from t join hot_ranked r
                            using (grain, period_start, area_level, area_code, topic_code)
                    )
                    select grain, period_start, area_level, area_code, topic_code, title, title_rank from (
                        select *, row_number() over (partition by period_start, area_code, topic_code
                                                     order by n desc, title) as title_rank from kept
                    ) where title_rank <= {TITLES}""")
        # each distinct title scrubbed once, in SQL through a Python function: nothing per order in Python
        con.create_function(SCRUB_FUNCTION, _scrub_title, ["VARCHAR"], "VARCHAR")
        try:
            con.execute(f"""
                create or replace temp table hot_examples as
                with scrubbed as (select title, {SCRUB_FUNCTION}(title) as scrubbed
                                  from (select distinct title from hot_titles))
                select grain, period_start, area_level, area_code, topic_code,
                       string_agg(s.scrubbed, ' | ' order by h.title_rank) as titles
                from hot_titles h join scrubbed s using (title)
                group by all""")
        finally:
            con.remove_function(SCRUB_FUNCTION)
        has_keywords = con.execute("select count(*) from information_schema.tables where table_schema = ? "
                                   "and table_name = 'topic_keywords'", [SCHEMA]).fetchall()[0][0]
        keywords = (f"(select string_agg(term, ',' order by rank) from {TOPIC_TABLE} k "
                    f"where k.topic_level = 'category' and k.topic_code = r.topic_code and k.rank <= 5)"
                    if has_keywords else "cast(null as varchar)")
        con.execute(f"""
            create or replace table {TABLE} as
            select r.grain, r.period_start, r.area_level, r.area_code, r.rank::integer as rank, r.topic_code,
                   c.category_name as topic_name, r.orders::integer as orders,
                   coalesce(r.previous_orders, 0)::integer as previous_orders,
                   case when r.previous_orders > 0 then round(r.orders / r.previous_orders - 1, 4) end
                       as growth_vs_previous,
                   case when r.has_last_year then coalesce(r.last_year_orders, 0)::integer end as last_year_orders,
                   case when r.last_year_orders > 0 then round(r.orders / r.last_year_orders - 1, 4) end
                       as growth_vs_last_year,
                   {keywords} as keywords,
                   e.titles as representative_titles
            from hot_ranked r
            left join marts.dim_category c on c.category_code = r.topic_code
            left join hot_examples e using (grain, period_start, area_level, area_code, topic_code)
            order by r.grain, r.period_start, r.area_level, r.area_code, r.rank""")
        for table in ("hot_base", "hot_counts", "hot_ranked", "hot_titles", "hot_examples"):
            con.execute(f"drop table if exists {table}")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    rows = con.execute(f"select count(*) from {TABLE}").fetchall()[0][0]
    return {"rows": rows}
