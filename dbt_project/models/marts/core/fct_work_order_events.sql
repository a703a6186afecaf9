{{ config(materialized='incremental', unique_key='event_id', incremental_strategy='replace_touched_orders',
          on_schema_change='fail') }}
-- depends_on: {{ ref('int_touched_orders') }}
-- depends_on: {{ ref('int_touched_log') }}
-- 工单流转事件: the lifecycle event log of the valid work orders. Grain: one row per event_id.
-- Incremental: a run replaces every event of the orders touched since the previous build
-- (int_touched_orders); a full refresh gives the same table.
with events as (
    select * from {{ ref('int_work_order_events') }}
    {% if is_incremental() %}
    where {{ touched_orders('order_no') }}
    {% endif %}
)

select
    events.event_id,
    events.order_no,
    events.event_type,
    event_types.event_type_name,
    events.dept_code,
    events.role,
    events.occurred_at,
    events.recorded_at,
    events.source_system,
    events.load_id
from events
join {{ ref('int_work_orders_unified') }} as orders
    on orders.order_no = events.order_no and orders.rejection_reason is null
left join {{ ref('ref_event_types') }} as event_types on event_types.event_type = events.event_type
