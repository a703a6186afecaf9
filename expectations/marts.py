"""Suites for what the platform publishes from: the marts (facts and dimensions) and the indicator
tables. Everything here is critical unless marked: a failure blocks the bulletin (Dagster blocking
asset checks), because nothing wrong may reach a publication. Shared tables must not hold a phone
or ID number in any text column.
"""

from __future__ import annotations

from expectations.core import (
    Check,
    Scope,
    ScopeInput,
    Suite,
    ValueSets,
    between,
    has_columns,
    in_scope,
    in_set,
    no_personal_numbers,
    not_before,
    not_null,
    unique,
)
from expectations.raw import EARLIEST_PLAUSIBLE, STATUSES, events_frame, latest_plausible, part_filter

TEXT_TYPES = ("VARCHAR", "TEXT")
DIMENSION_KEYS = {"dim_category": "category_code", "dim_channel": "channel_code", "dim_community": "community_code",
                  "dim_date": "date_day", "dim_department": "department_code", "dim_district": "district_code",
                  "dim_street": "street_code"}


def _privacy_checks(prefix: str, columns: list[tuple[str, str]]) -> tuple[Check, ...]:
    return tuple(Check(f"{prefix}.no_personal_numbers_in_{name}", no_personal_numbers(name), dimension="privacy",
                       column=name, description=f"字段 {name} 不含手机号或身份证号")
                 for name, kind in columns if kind.upper() in TEXT_TYPES and name != "record_key")


# the orders each build may rewrite in the facts (intermediate.int_touched_log): the facts change nowhere else
REWRITTEN_ORDERS = ScopeInput("intermediate.int_touched_log", "order_no", "build_id")


def _orders_frame(in_part=None) -> str:
    return f"""
        with closes as (select distinct order_no from marts.fct_work_order_events
                        where event_type = 'close'{part_filter(in_part, 'order_no', 'and')})
        select orders.order_no as record_key, orders.*,
               not orders.is_closed or closes.order_no is not null as close_event_known
        from marts.fct_work_orders as orders
        left join closes on closes.order_no = orders.order_no{part_filter(in_part, 'orders.order_no')}"""


def _events_frame(in_part=None) -> str:
    return events_frame("marts.fct_work_order_events", "marts.fct_work_orders",
                        "events.event_id as record_key, events.*", in_part)


def fct_work_orders(v: ValueSets) -> Suite:
    n = "marts.fct_work_orders"
    return Suite(n, ("marts", "fct_work_orders"), _orders_frame(), scope=Scope(
        "order_no", _orders_frame(in_scope), ScopeInput("marts.fct_work_orders", "order_no", None), key="order_no",
        unique=(("order_no", "order_no"),), others=(REWRITTEN_ORDERS,)), checks=(
        Check(f"{n}.schema", has_columns(["order_no", "district_code", "category_code", "received_at", "closed_at",
                                          "due_at", "lead_dept_code", "status"]), dimension="schema",
              description="事实表包含约定字段"),
        Check(f"{n}.order_no_unique", unique("order_no"), dimension="consistency", description="工单编号唯一"),
        Check(f"{n}.order_no_present", not_null("order_no"), dimension="completeness", description="工单编号必填"),
        Check(f"{n}.received_at_present", not_null("received_at"), dimension="completeness",
              description="受理时间必填"),
        Check(f"{n}.district_present", not_null("district_code"), dimension="completeness",
              description="被反映区必填"),
        Check(f"{n}.category_present", not_null("category_code"), dimension="completeness",
              description="问题分类必填"),
        Check(f"{n}.district_known", in_set("district_code", v.column("ref_districts", "district_code")),
              description="被反映区在区划表内"),
        Check(f"{n}.category_known", in_set("category_code", v.column("ref_categories", "category_code")),
              description="问题分类在分类表内"),
        Check(f"{n}.demand_type_known", in_set("demand_type_code", v.column("ref_demand_types", "demand_type_code")),
              description="诉求类型在代码表内"),
        Check(f"{n}.channel_known", in_set("channel_code", v.column("ref_channels", "channel_code")),
              description="受理渠道在代码表内"),
        Check(f"{n}.lead_department_known", in_set("lead_dept_code", v.column("ref_departments", "department_code")),
              description="主办单位在单位表内"),
        Check(f"{n}.status_known", in_set("status", STATUSES), description="工单状态在约定取值内"),
        Check(f"{n}.received_at_plausible", between("received_at", EARLIEST_PLAUSIBLE, latest_plausible()),
              bound_only_widens=True, description="受理时间在合理时间范围内"),
        Check(f"{n}.dispatched_after_received", not_before("dispatched_at", "received_at"), dimension="consistency",
              description="派单不早于受理"),
        Check(f"{n}.signed_after_dispatched", not_before("signed_at", "dispatched_at"), dimension="consistency",
              description="签收不早于派单"),
        Check(f"{n}.closed_after_received", not_before("closed_at", "received_at"), dimension="consistency",
              description="办结不早于受理"),
        Check(f"{n}.follow_up_after_close", not_before("visited_at", "closed_at"), dimension="consistency",
              description="回访在办结之后"),
        Check(f"{n}.handling_days_not_negative", between("handling_working_days", 0, None), description="办理时长不为负"),
        Check(f"{n}.closed_order_has_close_event", in_set("close_event_known", [True]), dimension="consistency",
              description="已办结工单有办结事件"),
        *_privacy_checks(n, v.columns("marts", "fct_work_orders")),
    ))


def fct_work_order_events(v: ValueSets) -> Suite:
    n = "marts.fct_work_order_events"
    return Suite(n, ("marts", "fct_work_order_events"), _events_frame(), scope=Scope(
        "order_no", _events_frame(in_scope), ScopeInput("marts.fct_work_order_events", "order_no", None),
        key="event_id", unique=(("event_id", "event_id"),), others=(REWRITTEN_ORDERS,)), checks=(
        Check(f"{n}.schema", has_columns(["event_id", "order_no", "event_type", "occurred_at", "recorded_at"]),
              dimension="schema", description="事件表包含约定字段"),
        Check(f"{n}.event_id_unique", unique("event_id"), dimension="consistency", description="事件编号唯一"),
        Check(f"{n}.belongs_to_an_order", in_set("order_known", [True]), dimension="consistency",
              description="每个事件都属于事实表中的工单"),
        Check(f"{n}.event_type_known", in_set("event_type", v.column("ref_event_types", "event_type")),
              description="事件类型在流程环节表内"),
        Check(f"{n}.occurred_at_present", not_null("occurred_at"), dimension="completeness",
              description="发生时间必填"),
        Check(f"{n}.after_accept", not_before("occurred_at", "accepted_at"), dimension="consistency",
              description="流程环节按顺序：不早于受理"),
        Check(f"{n}.recorded_not_before_occurred", not_before("recorded_at", "occurred_at"), severity="warning",
              dimension="consistency", description="记录时间不早于发生时间"),
        *_privacy_checks(n, v.columns("marts", "fct_work_order_events")),
    ))


def dimension(table: str, key: str):
    def build(v: ValueSets) -> Suite:
        n = f"marts.{table}"
        sql = f"select cast({key} as varchar) as record_key, * from marts.{table}"
        return Suite(n, ("marts", table), sql, checks=(
            Check(f"{n}.{key}_unique", unique(key), dimension="consistency", description="维度主键唯一"),
            Check(f"{n}.{key}_present", not_null(key), dimension="completeness", description="维度主键必填"),
            *_privacy_checks(n, v.columns("marts", table)),
        ))
    return build


CHANGE_PREFIXES = ("mom_", "yoy_")  # 环比/同比 changes are rates of change, not shares
ROW_KEY_COLUMNS = ("period_type", "period", "grain", "peer_group", "unit_code", "district_code", "indicator_key",
                   "version")


def indicator_table(table: str):
    """Indicator tables change shape as indicators are added; the suite checks what every one must hold:
    rates within 0..1, counts not negative, a period on every row, no personal numbers."""
    def build(v: ValueSets) -> Suite:
        n = f"indicators.{table}"
        columns = v.columns("indicators", table)
        names = [c for c, _ in columns]
        keys = [c for c in ROW_KEY_COLUMNS if c in names]
        # a key from the row's own dimensions, not its position: it stays the row's when other periods
        # are recomputed (remembered passes are found by it; see expectations.runner)
        record_key = (f"concat_ws('|', {', '.join(f'cast({c} as varchar)' for c in keys)})" if keys
                      else "cast(row_number() over () as varchar)")
        sql = f"select {record_key} as record_key, * from indicators.{table}"
        checks = [Check(f"{n}.{c}_within_0_1", between(c, 0, 1), description=f"{c} 在 0 到 1 之间")
                  for c in names if c.endswith("_rate") and not c.startswith(CHANGE_PREFIXES)]
        checks += [Check(f"{n}.{c}_not_negative", between(c, 0, None), description=f"{c} 不为负")
                   for c, kind in columns if kind.upper() in ("BIGINT", "INTEGER", "HUGEINT") and not c.endswith("_rate")]
        checks += [Check(f"{n}.{c}_present", not_null(c), dimension="completeness", description=f"{c} 必填")
                   for c in names if c in ("period", "month", "grain")]
        checks += list(_privacy_checks(n, columns))
        return Suite(n, ("indicators", table), sql, checks=tuple(checks))
    return build


MART_SUITES = {("marts", "fct_work_orders"): fct_work_orders,
               ("marts", "fct_work_order_events"): fct_work_order_events,
               **{("marts", t): dimension(t, k) for t, k in DIMENSION_KEYS.items()}}


def indicator_suites(v: ValueSets) -> dict[tuple[str, str], object]:
    tables = [r[0] for r in v._con.execute(
        "select table_name from information_schema.tables where table_schema = 'indicators' order by 1").fetchall()]
    return {("indicators", t): indicator_table(t) for t in tables}


def suites_for(asset_key: tuple[str, ...], v: ValueSets) -> list[Suite]:
    """The suites of an asset: its own table, or, for an indicators asset that writes several tables
    under other names, every table of the indicators schema."""
    if asset_key[0] == "indicators" and not v.table_exists(*asset_key):
        return [indicator_table(t)(v) for (_, t) in indicator_suites(v)]
    return [suite_for(asset_key, v)]


def suite_for(asset_key: tuple[str, ...], v: ValueSets) -> Suite:
    builders = {**MART_SUITES, **indicator_suites(v)}
    if tuple(asset_key) in builders:
        return builders[tuple(asset_key)](v)
    if asset_key[0] == "indicators":
        return indicator_table(asset_key[1])(v)
    raise KeyError(f"no suite for {'/'.join(asset_key)}")
