{{ config(materialized='incremental', incremental_strategy='replace_touched_orders', unique_key='order_no',
          on_schema_change='fail') }}
-- depends_on: {{ ref('int_touched_orders') }}
-- Lifecycle facts of each order derived from its event log (int_work_order_events).
-- Grain: one row per order_no that has events.
with events as (
    select * from {{ ref('int_work_order_events') }}
    {% if is_incremental() %}where {{ touched_orders('order_no') }}{% endif %}
),

lead_dispatches as (
    select order_no, occurred_at, dept_code,
           row_number() over (partition by order_no order by occurred_at desc, event_id desc) as recency
    from events
    where event_type in ('dispatch', 'reassign') and role = 'lead'
),

last_dispatch as (
    select order_no, occurred_at as dispatched_at, dept_code as lead_dept_code
    from lead_dispatches where recency = 1
),

first_dispatch as (
    select order_no, min(occurred_at) as first_dispatched_at
    from events where event_type = 'dispatch' and role = 'lead' group by order_no
),

lead_signs as (
    select events.order_no, min(events.occurred_at) as signed_at
    from events
    join last_dispatch on last_dispatch.order_no = events.order_no
    where events.event_type = 'sign' and events.role = 'lead' and events.dept_code = last_dispatch.lead_dept_code
      and events.occurred_at >= last_dispatch.dispatched_at
    group by events.order_no
),

closes as (
    select order_no, event_type, occurred_at,
           row_number() over (partition by order_no order by occurred_at desc, event_id desc) as recency
    from events where event_type in ('close', 'redo')
),

flags as (
    select
        order_no,
        min(occurred_at) filter (where event_type = 'accept') as accepted_at,
        min(occurred_at) filter (where event_type = 'close') as first_closed_at,
        max(case when event_type = 'direct_answer' then 1 else 0 end) = 1 as is_direct_answer,
        max(case when event_type = 'return' then 1 else 0 end) = 1 as is_returned,
        max(case when event_type = 'reassign' then 1 else 0 end) = 1 as is_reassigned,
        max(case when event_type = 'extend_approve' then 1 else 0 end) = 1 as is_extended,
        max(case when event_type = 'supervise' then 1 else 0 end) = 1 as is_supervised,
        max(case when event_type = 'redo' then 1 else 0 end) = 1 as is_redone,
        max(case when event_type = 'merge' then 1 else 0 end) = 1 as is_merged,
        max(recorded_at) as last_event_recorded_at,
        max(load_id) as last_event_load_id
    from events
    group by order_no
)

select
    flags.order_no,
    flags.accepted_at,
    first_dispatch.first_dispatched_at,
    last_dispatch.dispatched_at,
    last_dispatch.lead_dept_code,
    lead_signs.signed_at,
    flags.first_closed_at,
    case when closes.event_type = 'close' then closes.occurred_at end as closed_at,
    flags.is_direct_answer,
    flags.is_returned,
    flags.is_reassigned,
    flags.is_extended,
    flags.is_supervised,
    flags.is_redone,
    flags.is_merged,
    flags.last_event_recorded_at,
    flags.last_event_load_id
from flags
left join first_dispatch on first_dispatch.order_no = flags.order_no
left join last_dispatch on last_dispatch.order_no = flags.order_no
left join lead_signs on lead_signs.order_no = flags.order_no
left join closes on closes.order_no = flags.order_no and closes.recency = 1
