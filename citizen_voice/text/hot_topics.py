"""Hot topics (热点诉求): the top-N topics per day, week and month, city-wide and per district and street.

A topic is a level-3 category of the tree (the recorded one); invalid calls (无效) are left out.
Each row carries the count, the previous period's count and growth, the same period a year before
(day - 1 year, week - 52 weeks, month - 12 months) and its growth, the topic's keywords
(text.topic_keywords) and up to three representative titles: the most frequent titles of the
topic in that area and period, scrubbed again with citizen_voice.privacy (titles are already
masked at ingestion; this is the publishing-side guard).

A run recomputes only the periods whose rows can change: those holding the received date (old or
new) of an order whose inputs changed (received date, demand type, category, district, street, title:
a hash per order in text.hot_topic_inputs), and those whose previous or last-year period is one of
them (growth columns). The keywords and topic names of the other rows are refreshed in place. With no
state, or other settings, the table is recomputed whole; both give the same table.
"""

from __future__ import annotations

import json

import duckdb

from citizen_voice.digest import digest_sql
from citizen_voice.privacy import scrub_text
from citizen_voice.text.keywords import TOPIC_TABLE
from citizen_voice.text.tokens import SCHEMA, STATE_SCHEMA, TEXTS, ensure_schema
from citizen_voice.warehouse import has_table, transaction

TABLE = f"{SCHEMA}.hot_topics"
TOP_N = 10
TITLES = 3
GRAINS = {  # grain -> (period start, previous period start, same period last year)
    "day": ("received_date", "period_start - interval 1 day", "period_start - interval 1 year"),
    "week": ("date_trunc('week', received_date)", "period_start - interval 7 day", "period_start - interval 364 day"),
    "month": ("date_trunc('month', received_date)", "period_start - interval 1 month",
              "period_start - interval 1 year"),
}
LENGTHS = {"day": "interval 1 day", "week": "interval 7 day", "month": "interval 1 month"}
AREAS = {"city": "'city'", "district": "district_code", "street": "street_code"}
STATE = f"{STATE_SCHEMA}.hot_topic_inputs"
META = f"{STATE_SCHEMA}.hot_topic_meta"
STATE_VERSION = 2  # bump when the state tables change meaning (2: digests instead of DuckDB hashes)
# what a hot-topic row reads of an order, as a digest: an order whose digest changed changes its periods
_CODES = ["category_code", "district_code", "street_code", "title"]
INPUTS = f"""
    select order_no, received_date,
           {digest_sql(["received_date", "demand_type_code is distinct from 'WX'", *_CODES], _CODES)} as input_hash
    from {TEXTS}"""
SCRUB_FUNCTION = "cv_scrub_title"


def _scrub_title(title: str) -> str:
    return scrub_text(title)


def _state_key(top_n: int) -> str:
    return json.dumps({"top_n": int(top_n), "titles": TITLES, "grains": GRAINS, "areas": AREAS,
                       "state_version": STATE_VERSION, "duckdb": duckdb.__version__}, sort_keys=True)


def _table_exists(con, table: str) -> bool:
    return has_table(con, *table.split("."))


def _state_valid(con, top_n: int) -> bool:
    if not all(_table_exists(con, table) for table in (TABLE, STATE, META)):
        return False
    return con.execute(f"select state_key from {META}").fetchall() == [(_state_key(top_n),)]


def refresh(con, top_n: int = TOP_N, full: bool = False) -> dict:
    """Bring text.hot_topics up to date: only the periods a change can reach, or everything when asked,
    without state or with other settings."""
    ensure_schema(con)
    incremental = not full and _state_valid(con, top_n)
    con.execute(f"create or replace temp table hot_inputs_now as {INPUTS}")
    with transaction(con):
        changed, targets = _targets(con) if incremental else (None, None)
        _compute(con, top_n, incremental)
        if incremental:
            con.execute(f"delete from {TABLE} h using hot_targets t "
                        "where h.grain = t.grain and h.period_start = t.period_start")
            con.execute(f"insert into {TABLE} select * from hot_new_rows")
            _refresh_labels(con)
            con.execute(f"delete from {STATE} where order_no in (select order_no from hot_changed)")
            con.execute(f"""insert into {STATE} select * from hot_inputs_now
                            where order_no in (select order_no from hot_changed where not removed)""")
        else:
            con.execute(f"create or replace table {TABLE} as select * from hot_new_rows")
            con.execute(f"create or replace table {STATE} as select * from hot_inputs_now order by order_no")
        con.execute(f"create or replace table {META} as select ? as state_key", [_state_key(top_n)])
        for table in ("hot_base", "hot_counts", "hot_ranked", "hot_titles", "hot_examples", "hot_new_rows",
                      "hot_inputs_now", "hot_changed", "hot_changed_periods", "hot_targets", "hot_needed_days",
                      "hot_labels"):
            con.execute(f"drop table if exists {table}")
    rows = con.execute(f"select count(*) from {TABLE}").fetchall()[0][0]
    figures = {"rows": rows, "mode": "incremental" if incremental else "full"}
    if incremental:
        periods = con.execute(f"select count(distinct (grain, period_start)) from {TABLE}").fetchall()[0][0]
        figures.update(changed_orders=changed, periods_recomputed=targets, periods=periods)
    return figures


def _targets(con) -> tuple[int, int]:
    """hot_targets: the periods to recompute; hot_needed_days: the days their counts read (the target
    periods and their previous and last-year periods). Returns (changed orders, target periods)."""
    con.execute(f"""
        create or replace temp table hot_changed as
        select coalesce(n.order_no, s.order_no) as order_no, n.order_no is null as removed,
               s.received_date as old_date, n.received_date as new_date
        from hot_inputs_now n full join {STATE} s on s.order_no = n.order_no
        where s.order_no is null or n.order_no is null or n.input_hash <> s.input_hash""")
    days = "(select old_date as received_date from hot_changed union select new_date from hot_changed)"
    con.execute("create or replace temp table hot_changed_periods as " + " union ".join(
        f"select '{grain}' as grain, cast({period} as date) as period_start from {days} where received_date is not null"
        for grain, (period, _, _) in GRAINS.items()))
    candidates = (f"(select distinct grain, period_start from {TABLE} "
                  f"union select grain, period_start from hot_changed_periods)")
    con.execute("create or replace temp table hot_targets as " + " union ".join(
        f"""select grain, period_start from {candidates} c where grain = '{grain}' and (
                period_start in (select period_start from hot_changed_periods p where p.grain = c.grain)
                or cast({prev} as date) in (select period_start from hot_changed_periods p where p.grain = c.grain)
                or cast({last_year} as date) in (select period_start from hot_changed_periods p where p.grain = c.grain))"""
        for grain, (_, prev, last_year) in GRAINS.items()))
    needed = " union ".join(
        f"""select period_start, period_start + {LENGTHS[grain]} as period_end from (
                select period_start from hot_targets where grain = '{grain}'
                union select cast({prev} as date) from hot_targets where grain = '{grain}'
                union select cast({last_year} as date) from hot_targets where grain = '{grain}')"""
        for grain, (_, prev, last_year) in GRAINS.items())
    con.execute(f"""create or replace temp table hot_needed_days as
                    select distinct cast(unnest(range(period_start, period_end, interval 1 day)) as date) as day
                    from ({needed})""")
    changed = con.execute("select count(*) from hot_changed").fetchall()[0][0]
    targets = con.execute("select count(*) from hot_targets").fetchall()[0][0]
    return changed, targets


def _compute(con, top_n: int, incremental: bool) -> None:
    """hot_new_rows: the table's rows of every period, or of the periods in hot_targets (their counts
    read from the days in hot_needed_days, where every period a target refers to is whole)."""
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
    days = "and received_date in (select day from hot_needed_days)" if incremental else ""
    targets = "semi join hot_targets t using (grain, period_start)" if incremental else ""
    con.execute(f"""create or replace temp table hot_base as
        select order_no, received_date, category_code, district_code, street_code, title
        from {TEXTS} where demand_type_code is distinct from 'WX' and received_date is not null {days}""")
    con.execute(f"create or replace temp table hot_counts as {counts}")
    con.execute(f"""
        create or replace temp table hot_ranked as
        with shifted as (select s.* from ({previous}) s {targets}),
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
    con.execute(f"""
        create or replace temp table hot_new_rows as
        select r.grain, r.period_start, r.area_level, r.area_code, r.rank::integer as rank, r.topic_code,
               c.category_name as topic_name, r.orders::integer as orders,
               coalesce(r.previous_orders, 0)::integer as previous_orders,
               case when r.previous_orders > 0 then round(r.orders / r.previous_orders - 1, 4) end
                   as growth_vs_previous,
               case when r.has_last_year then coalesce(r.last_year_orders, 0)::integer end as last_year_orders,
               case when r.last_year_orders > 0 then round(r.orders / r.last_year_orders - 1, 4) end
                   as growth_vs_last_year,
               {_keywords_sql(con, 'r.topic_code')} as keywords,
               e.titles as representative_titles
        from hot_ranked r
        left join marts.dim_category c on c.category_code = r.topic_code
        left join hot_examples e using (grain, period_start, area_level, area_code, topic_code)
        order by r.grain, r.period_start, r.area_level, r.area_code, r.rank""")


def _keywords_sql(con, topic_code: str) -> str:
    """A topic's five best keywords from text.topic_keywords (NULL before that step has run)."""
    return (f"(select string_agg(term, ',' order by rank) from {TOPIC_TABLE} k "
            f"where k.topic_level = 'category' and k.topic_code = {topic_code} and k.rank <= 5)"
            if _table_exists(con, TOPIC_TABLE) else "cast(null as varchar)")


def _refresh_labels(con) -> None:
    """The keywords and topic names of the periods not recomputed (the topic keywords change daily)."""
    con.execute(f"""create or replace temp table hot_labels as
                    select t.topic_code, c.category_name as topic_name, {_keywords_sql(con, 't.topic_code')} as keywords
                    from (select distinct topic_code from {TABLE}) t
                    left join marts.dim_category c on c.category_code = t.topic_code""")
    con.execute(f"""update {TABLE} h set keywords = l.keywords, topic_name = l.topic_name from hot_labels l
                    where l.topic_code = h.topic_code
                      and (h.keywords is distinct from l.keywords or h.topic_name is distinct from l.topic_name)""")
