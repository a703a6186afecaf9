-- One row per valid work order with its timeliness flags, as of the newest data loaded.
with orders as (
    select * from {{ ref('int_work_orders_unified') }}
    where rejection_reason is null
),

as_of as (
    select max(updated_at) as observed_at from {{ ref('int_work_orders_unified') }}
)

select
    orders.order_no,
    orders.channel_code,
    orders.demand_type_code,
    orders.category_code,
    orders.district_code,
    orders.street_code,
    orders.lead_dept_code,
    orders.is_direct_answer,
    orders.status,
    orders.received_at,
    cast(orders.received_at as date) as received_date,
    orders.due_at,
    orders.closed_at,
    orders.closed_at is not null as is_closed,
    orders.due_at is not null and orders.closed_at is not null and orders.closed_at <= orders.due_at
        as is_closed_on_time,
    orders.due_at is not null and orders.due_at < as_of.observed_at
        and (orders.closed_at is null or orders.closed_at > orders.due_at) as is_overdue
from orders
cross join as_of
