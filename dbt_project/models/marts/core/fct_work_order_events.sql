{{ config(materialized='incremental', unique_key='event_id', incremental_strategy='delete+insert',
          on_schema_change='fail') }}
-- 工单流转事件: the lifecycle event log of the valid work orders. Grain: one row per event_id.
with events as (
    select * from {{ ref('int_work_order_events') }}
    {% if is_incremental() %}
    where load_id > (select max(load_id) from {{ this }})
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
