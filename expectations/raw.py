"""Suites for every department system's tables as they arrived (raw layer, read through staging
where staging keeps one row per raw record, else from the raw table itself).

Each frame has `record_key` — the same locator staging calls source_record ('order_no=…', 'bjbh=…',
'<file>:<line>') — `order_no` when the record names one, `record_day` (the day the department
reported the record: the drop's date for file drops, else the record's own update time, else the
load's day) and `load_id`. Critical checks put failing records into quality.quarantine; the
ingestion boundary's own rules (required fields, declared types, unreadable files) are named here
too (BOUNDARY_RULES) and their quarantined records are taken over from raw_<source>._quarantine.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from expectations.core import (
    Check,
    Scope,
    ScopeInput,
    Suite,
    ValueSets,
    at_most,
    between,
    has_columns,
    in_scope,
    in_set,
    max_length,
    not_before,
    not_null,
    unique,
)

MAX_TEXT_LENGTH = 4000  # characters of free text a record may carry (the longest real complaint is far shorter)
EARLIEST_PLAUSIBLE = datetime(2000, 1, 1)  # 12345 hotlines merged from 2020; older dates are wrong
STATUSES = ("accepted", "handling", "closed", "visited")
URGENCIES = ("一般", "紧急", "特急")


def latest_plausible() -> datetime:
    """No department reports the future: anything after tomorrow is impossible."""
    return datetime.now() + timedelta(days=1)


def _load_day(column: str) -> str:
    return f"cast(to_timestamp(cast({column} as double)) at time zone 'Asia/Shanghai' as date)"


def _file_day(column: str) -> str:
    return f"try_strptime(regexp_extract({column}, '(\\d{{8}})', 1), '%Y%m%d')::date"


# The ingestion boundary's rules (ingestion/boundary.py), named as expectations: the reason it
# wrote starts with the prefix.
BOUNDARY_RULES = {
    "missing required field": ("boundary.required_field_present", "completeness", "必填字段缺失"),
    "field ": ("boundary.declared_type_holds", "validity", "字段格式不符合约定（如时间无法解析）"),
    "conflicting duplicate": ("boundary.no_conflicting_duplicate", "consistency",
                              "同一记录同一更新时间报送了内容不同的两条"),
    "": ("boundary.unit_readable", "interface_stability", "整个文件或数据页无法读取（如文件被截断）"),
}


def boundary_rule(reason: str) -> tuple[str, str, str]:
    for prefix, rule in BOUNDARY_RULES.items():
        if reason.startswith(prefix):
            return rule
    raise AssertionError("the empty prefix matches every reason")


# each order's first accept (the null order_no as one group, as a window partition would have it): a
# grouped join, not `min(…) over (partition by order_no)`, which drags every column through the window
ACCEPTED_AT = """select order_no, min(occurred_at) filter (where event_type = 'accept') as accepted_at
                 from {events} group by order_no"""


def part_filter(in_part, column: str, keyword: str = "where") -> str:
    """The filter of a scoped frame's input on its scope column (nothing for the whole frame)."""
    return f" {keyword} {in_part(column)}" if in_part else ""


def _hotline_orders_frame(in_part=None) -> str:
    return f"""
        select source_record as record_key, order_no,
               coalesce(cast(updated_at as date), {_load_day('load_id')}) as record_day,
               cast(load_id as varchar) as load_id, channel_code, demand_type_code, urgency, category_code,
               district_code, street_code, status, received_at, updated_at, content
        from staging.stg_hotline__orders{part_filter(in_part, 'order_no')}"""


def events_frame(events: str, orders: str, columns: str, in_part=None) -> str:
    """The `columns` of an events table, then each event's order's first accept (accepted_at) and whether
    `orders` knows its order (order_known); with `in_part`, every input filtered to the touched orders."""
    return f"""
        with orders as (select distinct order_no from {orders}{part_filter(in_part, 'order_no')}),
        accepts as ({ACCEPTED_AT.format(events=events + part_filter(in_part, 'order_no'))})
        select {columns}, accepts.accepted_at, orders.order_no is not null as order_known
        from {events} as events
        left join orders on orders.order_no = events.order_no
        left join accepts on accepts.order_no is not distinct from events.order_no{part_filter(in_part, 'events.order_no')}"""


def _hotline_events_frame(in_part=None) -> str:
    return events_frame("staging.stg_hotline__events", "raw_hotline.orders", f"""
               events.source_record as record_key, events.order_no,
               coalesce(cast(events.recorded_at as date), {_load_day('events.load_id')}) as record_day,
               cast(events.load_id as varchar) as load_id, events.event_id, events.event_type, events.dept_code,
               events.role, events.occurred_at, events.recorded_at""", in_part)


def hotline_orders(v: ValueSets) -> Suite:
    n = "raw_hotline.orders"
    return Suite(n, ("raw_hotline", "orders"), _hotline_orders_frame(), source="hotline", table="orders", scope=Scope(
        "order_no", _hotline_orders_frame(in_scope), ScopeInput("staging.stg_hotline__orders", "order_no", "load_id"),
        key="source_record", unique=(("order_no", "order_no"),)), checks=(
        Check(f"{n}.schema", has_columns(["record_key", "order_no", "received_at", "updated_at"]),
              dimension="schema", description="表结构包含必需字段"),
        Check(f"{n}.order_no_unique", unique("order_no"), dimension="consistency", column="order_no",
              description="工单编号唯一"),
        Check(f"{n}.received_at_present", not_null("received_at"), dimension="completeness", action="withhold",
              column="received_at", description="受理时间必填"),
        Check(f"{n}.demand_type_known", in_set("demand_type_code", v.column("ref_demand_types", "demand_type_code")),
              column="demand_type_code", description="诉求类型代码在标准代码表内"),
        Check(f"{n}.demand_type_present", not_null("demand_type_code"), dimension="completeness",
              column="demand_type_code", description="诉求类型必填"),
        Check(f"{n}.channel_known", in_set("channel_code", v.column("ref_channels", "channel_code")),
              column="channel_code", description="受理渠道代码在标准代码表内"),
        Check(f"{n}.district_code_known", in_set("district_code", v.column("ref_districts", "district_code")),
              action="withhold", column="district_code", description="被反映区代码在区划表内"),
        Check(f"{n}.district_code_present", not_null("district_code"), severity="warning",
              dimension="completeness", column="district_code", description="被反映区应填写"),
        Check(f"{n}.category_code_known", in_set("category_code", v.column("ref_categories", "category_code")),
              action="withhold", column="category_code", description="问题分类代码在三级分类表内"),
        Check(f"{n}.category_code_present", not_null("category_code"), severity="warning",
              dimension="completeness", column="category_code", description="问题分类应填写"),
        Check(f"{n}.street_code_known", in_set("street_code", v.column("ref_streets", "street_code")),
              severity="warning", column="street_code", description="街道代码在区划表内"),
        Check(f"{n}.urgency_known", in_set("urgency", URGENCIES), severity="warning", column="urgency",
              description="紧急程度为 一般/紧急/特急"),
        Check(f"{n}.status_known", in_set("status", STATUSES), severity="warning", column="status",
              description="工单状态在约定取值内"),
        Check(f"{n}.received_at_plausible", between("received_at", EARLIEST_PLAUSIBLE, latest_plausible()),
              action="withhold", column="received_at", bound_only_widens=True,
              description="受理时间在合理时间范围内"),
        Check(f"{n}.received_not_after_update", not_before("updated_at", "received_at"), dimension="consistency",
              action="withhold", column="received_at", description="受理时间不晚于工单最后更新时间"),
        Check(f"{n}.content_not_oversized", max_length("content", MAX_TEXT_LENGTH), action="withhold",
              column="content", description=f"诉求内容不超过 {MAX_TEXT_LENGTH} 字"),
    ))


def hotline_events(v: ValueSets) -> Suite:
    n = "raw_hotline.events"
    return Suite(n, ("raw_hotline", "events"), _hotline_events_frame(), source="hotline", table="events", scope=Scope(
        "order_no", _hotline_events_frame(in_scope), ScopeInput("staging.stg_hotline__events", "order_no", "load_id"),
        key="source_record", unique=(("event_id", "event_id"),),
        others=(ScopeInput("raw_hotline.orders", "order_no", "_dlt_load_id"),)), checks=(
        Check(f"{n}.schema", has_columns(["record_key", "event_id", "order_no", "event_type", "occurred_at"]),
              dimension="schema", description="表结构包含必需字段"),
        Check(f"{n}.event_id_unique", unique("event_id"), dimension="consistency", column="event_id",
              description="事件编号唯一"),
        Check(f"{n}.order_no_present", not_null("order_no"), dimension="completeness", column="order_no",
              description="事件须注明所属工单"),
        Check(f"{n}.occurred_at_present", not_null("occurred_at"), dimension="completeness", column="occurred_at",
              description="事件发生时间必填"),
        Check(f"{n}.event_type_known", in_set("event_type", v.column("ref_event_types", "event_type")),
              column="event_type", description="事件类型在流程环节表内"),
        Check(f"{n}.dept_code_known", in_set("dept_code", v.column("ref_departments", "department_code")),
              column="dept_code", description="承办单位代码在单位表内"),
        Check(f"{n}.role_known", in_set("role", ("lead", "assist")), severity="warning", column="role",
              description="承办角色为 主办/协办"),
        Check(f"{n}.recorded_not_before_occurred", not_before("recorded_at", "occurred_at"),
              dimension="consistency", column="recorded_at", description="记录时间不早于发生时间"),
        Check(f"{n}.after_accept", not_before("occurred_at", "accepted_at"), dimension="consistency",
              column="occurred_at", description="流程环节按顺序发生：不早于受理"),
        Check(f"{n}.belongs_to_known_order", in_set("order_known", [True]), severity="warning",
              dimension="consistency", column="order_no", description="事件所属工单在工单表中存在"),
    ))


def app311_requests(v: ValueSets) -> Suite:
    n = "raw_app311.requests"
    sql = f"""
        select requests.source_record as record_key, requests.request_id,
               coalesce(cast(requests.updated_at as date), cast(requests.received_at as date),
                        {_load_day('raw._dlt_load_id')}) as record_day,
               raw._dlt_load_id as load_id, requests.service_code, requests.status, requests.received_at,
               requests.updated_at, requests.latitude, requests.longitude, requests.content
        from staging.stg_app311__requests as requests
        join raw_app311.requests as raw on raw.service_request_id = requests.request_id"""
    return Suite(n, ("raw_app311", "requests"), sql, source="app311", table="requests", checks=(
        Check(f"{n}.schema", has_columns(["record_key", "request_id", "service_code", "received_at"]),
              dimension="schema", description="表结构包含必需字段"),
        Check(f"{n}.request_id_unique", unique("request_id"), dimension="consistency", column="request_id",
              description="诉求编号唯一"),
        Check(f"{n}.received_at_present", not_null("received_at"), dimension="completeness", column="received_at",
              description="提交时间必填"),
        Check(f"{n}.service_code_known", in_set("service_code", v.column("map_app311_services", "service_code")),
              column="service_code", description="服务代码在对照表内"),
        Check(f"{n}.status_known", in_set("status", ("open", "closed")), severity="warning", column="status",
              description="状态为 open/closed"),
        Check(f"{n}.received_at_plausible", between("received_at", EARLIEST_PLAUSIBLE, latest_plausible()),
              column="received_at", bound_only_widens=True, description="提交时间在合理时间范围内"),
        Check(f"{n}.latitude_plausible", between("latitude", 3, 54), severity="warning", column="latitude",
              description="纬度在中国境内"),
        Check(f"{n}.longitude_plausible", between("longitude", 73, 136), severity="warning", column="longitude",
              description="经度在中国境内"),
        Check(f"{n}.content_not_oversized", max_length("content", MAX_TEXT_LENGTH), column="content",
              description=f"诉求内容不超过 {MAX_TEXT_LENGTH} 字"),
    ))


def zhujian_tickets(v: ValueSets) -> Suite:
    n = "raw_zhujian.gd_main"
    sql = f"""
        select source_record as record_key, order_no, ticket_id,
               coalesce(cast(updated_at as date), {_load_day('load_id')}) as record_day,
               cast(load_id as varchar) as load_id, source_role, source_category, source_district, source_street,
               source_status, received_at, updated_at, closed_at, content,
               row_number() over (partition by order_no order by ticket_id) as ticket_rank_for_order
        from staging.stg_zhujian__tickets"""
    return Suite(n, ("raw_zhujian", "gd_main"), sql, source="zhujian", table="gd_main", checks=(
        Check(f"{n}.schema", has_columns(["record_key", "ticket_id", "order_no", "received_at"]),
              dimension="schema", description="表结构包含必需字段"),
        Check(f"{n}.ticket_id_unique", unique("ticket_id"), dimension="consistency", column="ticket_id",
              description="办件编号唯一"),
        Check(f"{n}.one_ticket_per_order", at_most("ticket_rank_for_order", 1), dimension="consistency",
              column="order_no", description="同一工单只应有一条办件记录（重复提交的记录冲突）"),
        Check(f"{n}.received_at_present", not_null("received_at"), dimension="completeness", column="received_at",
              description="受理时间必填"),
        Check(f"{n}.district_known", in_set("source_district", v.column("ref_districts", "district_name")),
              column="source_district", description="区县名称在区划表内"),
        Check(f"{n}.street_known", in_set("source_street", v.column("ref_streets", "street_name")),
              severity="warning", column="source_street", description="街道名称在区划表内"),
        Check(f"{n}.category_known", in_set("source_category", v.column("map_zhujian_categories", "source_code")),
              column="source_category", description="问题分类代码在对照表内"),
        Check(f"{n}.status_known", in_set("source_status", v.column("map_zhujian_statuses", "source_code")),
              column="source_status", description="办件状态代码在对照表内"),
        Check(f"{n}.role_known", in_set("source_role", v.column("map_zhujian_roles", "source_value")),
              column="source_role", description="主办/协办标识在对照表内"),
        Check(f"{n}.received_not_after_update", not_before("updated_at", "received_at"), dimension="consistency",
              column="received_at", description="受理时间不晚于更新时间"),
        Check(f"{n}.closed_not_before_received", not_before("closed_at", "received_at"), dimension="consistency",
              column="closed_at", description="办结时间不早于受理时间"),
        Check(f"{n}.content_not_oversized", max_length("content", MAX_TEXT_LENGTH), column="content",
              description=f"诉求内容不超过 {MAX_TEXT_LENGTH} 字"),
    ))


def zhujian_logs(v: ValueSets) -> Suite:
    n = "raw_zhujian.gd_lz"
    sql = f"""
        with tickets as (select distinct bjbh from raw_zhujian.gd_main)
        select logs.source_record as record_key, cast(null as varchar) as order_no,
               coalesce(cast(logs.recorded_at as date), {_load_day('raw._dlt_load_id')}) as record_day,
               raw._dlt_load_id as load_id, logs.log_id, logs.ticket_id, logs.source_action, logs.occurred_at,
               logs.recorded_at, tickets.bjbh is not null as ticket_known
        from staging.stg_zhujian__ticket_logs as logs
        join raw_zhujian.gd_lz as raw on raw.lzid = logs.log_id
        left join tickets on tickets.bjbh = logs.ticket_id"""
    return Suite(n, ("raw_zhujian", "gd_lz"), sql, source="zhujian", table="gd_lz", checks=(
        Check(f"{n}.schema", has_columns(["record_key", "log_id", "ticket_id", "occurred_at"]),
              dimension="schema", description="表结构包含必需字段"),
        Check(f"{n}.log_id_unique", unique("log_id"), dimension="consistency", column="log_id",
              description="流转记录编号唯一"),
        Check(f"{n}.occurred_at_present", not_null("occurred_at"), dimension="completeness", column="occurred_at",
              description="操作时间必填"),
        Check(f"{n}.action_known", in_set("source_action", v.column("map_zhujian_actions", "source_value")),
              column="source_action", description="操作类型在对照表内"),
        Check(f"{n}.recorded_not_before_occurred", not_before("recorded_at", "occurred_at"),
              dimension="consistency", column="recorded_at", description="记录时间不早于操作时间"),
        Check(f"{n}.belongs_to_known_ticket", in_set("ticket_known", [True]), severity="warning",
              dimension="consistency", column="ticket_id", description="流转记录所属办件存在"),
    ))


def _file_drop_frame(table: str, key_column: str, columns: str, fmt: str, updated: str, received: str) -> str:
    return f"""
        select _source_file || ':' || cast(_source_line as varchar) as record_key,
               nullif(trim({key_column}), '') as order_no,
               coalesce({_file_day('_source_file')}, {_load_day('_dlt_load_id')}) as record_day,
               _dlt_load_id as load_id, {columns},
               try_strptime(trim({received}), '{fmt}') as received_at,
               try_strptime(trim({updated}), '{fmt}') as updated_at,
               row_number() over (partition by nullif(trim({key_column}), ''), trim({updated})
                                  order by _source_file desc, _source_line) as version_rank
        from {table}"""


def chengguan_tickets(v: ValueSets) -> Suite:
    n = "raw_chengguan.tickets"
    sql = _file_drop_frame("raw_chengguan.tickets", '"工单编号"',
                           'trim("区县") as source_district, trim("街道") as source_street, '
                           'trim("问题类别") as source_category, trim("办理状态") as source_status, '
                           '"诉求内容" as content', "%Y/%m/%d %H:%M", '"更新时间"', '"受理时间"')
    return Suite(n, ("raw_chengguan", "tickets"), sql, source="chengguan", table="tickets", checks=(
        Check(f"{n}.schema", has_columns(["record_key", "order_no", "received_at", "updated_at"]),
              dimension="schema", description="表结构包含必需字段"),
        Check(f"{n}.record_key_unique", unique("record_key"), dimension="consistency", column="record_key",
              description="文件行唯一"),
        Check(f"{n}.one_version_per_update", at_most("version_rank", 1), dimension="consistency",
              column="order_no", description="同一工单同一更新时间只报送一次（重复行内容冲突）"),
        Check(f"{n}.received_at_present", not_null("received_at"), dimension="completeness", column="received_at",
              description="受理时间必填"),
        Check(f"{n}.updated_at_present", not_null("updated_at"), severity="warning", dimension="completeness",
              column="updated_at", description="更新时间应填写"),
        Check(f"{n}.district_known", in_set("source_district", v.column("ref_districts", "district_name")),
              column="source_district", description="区县名称在区划表内"),
        Check(f"{n}.street_known", in_set("source_street", v.column("ref_streets", "street_name")),
              severity="warning", column="source_street", description="街道名称在区划表内"),
        Check(f"{n}.category_known", in_set("source_category", v.column("ref_categories", "category_name")),
              column="source_category", description="问题类别名称在三级分类表内"),
        Check(f"{n}.status_known", in_set("source_status", v.column("map_chengguan_statuses", "source_value")),
              column="source_status", description="办理状态在对照表内"),
        Check(f"{n}.received_not_after_update", not_before("updated_at", "received_at"), dimension="consistency",
              column="received_at", description="受理时间不晚于更新时间"),
        Check(f"{n}.content_not_oversized", max_length("content", MAX_TEXT_LENGTH), column="content",
              description=f"诉求内容不超过 {MAX_TEXT_LENGTH} 字"),
    ))


def gongdian_tickets(v: ValueSets) -> Suite:
    n = "raw_gongdian.tickets"
    sql = _file_drop_frame("raw_gongdian.tickets", "ticket_no",
                           "nullif(trim(work_id), '') as work_id, lower(trim(district)) as source_district, "
                           "upper(trim(fault_type)) as source_category, upper(trim(state)) as source_status, "
                           "detail as content", "%Y-%m-%d %H:%M:%S", "update_time", "accept_time")
    return Suite(n, ("raw_gongdian", "tickets"), sql, source="gongdian", table="tickets", checks=(
        Check(f"{n}.schema", has_columns(["record_key", "order_no", "received_at", "updated_at"]),
              dimension="schema", description="表结构包含必需字段"),
        Check(f"{n}.record_key_unique", unique("record_key"), dimension="consistency", column="record_key",
              description="文件行唯一"),
        Check(f"{n}.one_version_per_update", at_most("version_rank", 1), dimension="consistency",
              column="order_no", description="同一工单同一更新时间只报送一次"),
        Check(f"{n}.work_id_present", not_null("work_id"), dimension="completeness", column="work_id",
              description="供电公司工单号必填"),
        Check(f"{n}.received_at_present", not_null("received_at"), dimension="completeness", column="received_at",
              description="受理时间必填"),
        Check(f"{n}.district_known", in_set("source_district", v.column("ref_districts", "district_pinyin")),
              column="source_district", description="区县拼音在区划表内"),
        Check(f"{n}.fault_type_known", in_set("source_category", v.column("map_gongdian_fault_types", "source_code")),
              column="source_category", description="故障类型代码在对照表内"),
        Check(f"{n}.state_known", in_set("source_status", v.column("map_gongdian_states", "source_code")),
              column="source_status", description="工单状态代码在对照表内"),
        Check(f"{n}.received_not_after_update", not_before("updated_at", "received_at"), dimension="consistency",
              column="received_at", description="受理时间不晚于更新时间"),
        Check(f"{n}.content_not_oversized", max_length("content", MAX_TEXT_LENGTH), column="content",
              description=f"诉求内容不超过 {MAX_TEXT_LENGTH} 字"),
    ))


def survey_visits(v: ValueSets) -> Suite:
    n = "raw_survey.visits"
    sql = f"""
        with closes as (
            select order_no, min(occurred_at) as first_closed_at
            from staging.stg_hotline__events where event_type = 'close' group by order_no
        )
        select visits.source_record as record_key, visits.order_no,
               coalesce({_file_day('visits.source_file')}, {_load_day('visits.load_id')}) as record_day,
               cast(visits.load_id as varchar) as load_id, visits.visit_id, visits.visited_at,
               visits.source_resolution, visits.source_satisfaction, closes.first_closed_at,
               closes.order_no is not null as order_closed_known
        from staging.stg_survey__visits as visits
        left join closes on closes.order_no = visits.order_no"""
    return Suite(n, ("raw_survey", "visits"), sql, source="survey", table="visits", checks=(
        Check(f"{n}.schema", has_columns(["record_key", "visit_id", "order_no", "visited_at"]),
              dimension="schema", description="表结构包含必需字段"),
        Check(f"{n}.visit_id_unique", unique("visit_id"), dimension="consistency", column="visit_id",
              description="回访编号唯一"),
        Check(f"{n}.visited_at_present", not_null("visited_at"), dimension="completeness", column="visited_at",
              description="回访时间必填"),
        Check(f"{n}.satisfaction_known",
              in_set("source_satisfaction", v.column("map_survey_satisfaction", "source_code")),
              column="source_satisfaction", description="满意度代码为 0/1/2/3"),
        Check(f"{n}.resolution_known", in_set("source_resolution", v.column("map_survey_resolution", "source_code")),
              column="source_resolution", description="解决情况代码为 1/2/3"),
        Check(f"{n}.after_close", not_before("visited_at", "first_closed_at"), dimension="consistency",
              column="visited_at", description="回访在工单办结之后"),
        Check(f"{n}.order_closed", in_set("order_closed_known", [True]), severity="warning",
              dimension="consistency", column="order_no", description="回访的工单已有办结记录"),
    ))


SUITES = (hotline_orders, hotline_events, app311_requests, zhujian_tickets, zhujian_logs, chengguan_tickets,
          gongdian_tickets, survey_visits)


def build(values: ValueSets) -> list[Suite]:
    return [builder(values) for builder in SUITES]
SUITE_NAMES = ("raw_hotline.orders", "raw_hotline.events", "raw_app311.requests", "raw_zhujian.gd_main",
               "raw_zhujian.gd_lz", "raw_chengguan.tickets", "raw_gongdian.tickets", "raw_survey.visits")
# what the frames read (the quarantine asset's upstream assets)
STAGING_INPUTS = ("stg_hotline__orders", "stg_hotline__events", "stg_app311__requests", "stg_zhujian__tickets",
                  "stg_zhujian__ticket_logs", "stg_survey__visits")
RAW_INPUTS = (("raw_hotline", "orders"), ("raw_app311", "requests"), ("raw_zhujian", "gd_main"),
              ("raw_zhujian", "gd_lz"), ("raw_chengguan", "tickets"), ("raw_gongdian", "tickets"))
