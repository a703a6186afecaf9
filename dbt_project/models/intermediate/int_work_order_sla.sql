{{ config(materialized='incremental', incremental_strategy='replace_touched_orders', unique_key='order_no',
          on_schema_change='fail') }}
-- depends_on: {{ ref('int_touched_orders') }}
-- Time limits (办理时限) on the working-day calendar. A limit of N working days runs from the
-- (last) dispatch and ends at 23:59:59 on the N-th working day after the dispatch day; an approved
-- extension adds its working days counted from the due day. The limit in force is the version of
-- ref_time_limits effective on the dispatch day, for the order's 诉求类型 and 紧急程度 (a row for
-- its level-1 category wins over the '*' row). Sign-for is due 24 hours after dispatch.
-- Grain: one row per dispatched order_no.
with orders as (
    select order_no, demand_type_code, urgency, category_code, dispatched_at, is_extended
    from {{ ref('int_work_orders_unified') }}
    where dispatched_at is not null
      {% if is_incremental() %} and {{ touched_orders('order_no') }}{% endif %}
),

categories as (
    select category_code, category_l1_code from {{ ref('ref_categories') }}
),

limits_ranked as (
    select
        orders.order_no,
        limits.time_limit_working_days,
        limits.extension_working_days,
        limits.version as time_limit_version,
        row_number() over (
            partition by orders.order_no
            order by case when limits.category_l1_code = '*' then 1 else 0 end, limits.effective_from desc
        ) as preference
    from orders
    left join categories on categories.category_code = orders.category_code
    join {{ ref('ref_time_limits') }} as limits
        on limits.demand_type_code = orders.demand_type_code
        and limits.urgency = orders.urgency
        and limits.category_l1_code in ('*', categories.category_l1_code)
        and limits.effective_from <= cast(orders.dispatched_at as date)
),

calendar as (
    select date_day, workday_index, is_workday from {{ ref('ref_calendar') }}
),

base as (
    select
        orders.order_no,
        orders.dispatched_at,
        orders.is_extended,
        limits.time_limit_working_days,
        limits.extension_working_days,
        limits.time_limit_version,
        due_day.date_day as base_due_day
    from orders
    join limits_ranked as limits on limits.order_no = orders.order_no and limits.preference = 1
    join calendar as dispatch_day on dispatch_day.date_day = cast(orders.dispatched_at as date)
    join calendar as due_day
        on due_day.is_workday and due_day.workday_index = dispatch_day.workday_index + limits.time_limit_working_days
)

select
    base.order_no,
    base.dispatched_at,
    base.dispatched_at + interval '24 hours' as sign_due_at,
    base.time_limit_working_days,
    base.time_limit_version,
    cast(base.base_due_day as timestamp) + interval '86399 seconds' as base_due_at,
    cast(case when base.is_extended then extended_day.date_day else base.base_due_day end as timestamp)
        + interval '86399 seconds' as due_at
from base
left join calendar as base_day on base_day.date_day = base.base_due_day
left join calendar as extended_day
    on extended_day.is_workday and extended_day.workday_index = base_day.workday_index + base.extension_working_days
