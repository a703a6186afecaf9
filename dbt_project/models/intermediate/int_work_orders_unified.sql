{{ config(materialized='incremental', incremental_strategy='replace_touched_orders', unique_key='order_no',
          on_schema_change='fail') }}
-- depends_on: {{ ref('int_touched_orders') }}
-- One record per work order across systems. Grain: one row per order_no known to the hotline.
-- Field precedence (documented in _intermediate__models.yml):
--   intake fields: the hotline's value when usable, else the first department system's (住建局,
--   城管局, 供电公司) whose record is complete; close time: the hotline's, else the lead
--   department's when newer than the hotline's last update; follow-up: the survey system.
-- Records that failed a critical expectation (quality.quarantine) are left out, withheld fields count
-- as missing; rows still missing a required field keep a rejection_reason and stay out of the marts.
with staged_hotline as (
    -- records that failed a critical expectation stay out (quality.quarantine); a withheld field is
    -- taken as missing, so the precedence below takes it from the next system
    select
        orders.load_id, orders.order_no, orders.source_record, orders.channel_code, orders.demand_type_code,
        orders.urgency, orders.title,
        case when {{ withheld('hotline', 'orders', 'orders.source_record', 'content') }} then null
             else orders.content end as content,
        case when {{ withheld('hotline', 'orders', 'orders.source_record', 'category_code') }} then null
             else orders.category_code end as category_code,
        case when {{ withheld('hotline', 'orders', 'orders.source_record', 'district_code') }} then null
             else orders.district_code end as district_code,
        orders.street_code, orders.community_code, orders.caller_phone_masked, orders.caller_phone_pseudonym,
        orders.caller_id_no_pseudonym, orders.is_confidential, orders.external_ref, orders.status,
        orders.lead_dept_code, orders.assist_dept_codes, orders.is_direct_answer, orders.parent_order_no,
        case when {{ withheld('hotline', 'orders', 'orders.source_record', 'received_at') }} then null
             else orders.received_at end as received_at,
        orders.due_at, orders.closed_at, orders.updated_at
    from {{ ref('stg_hotline__orders') }} as orders
    where {{ not_quarantined('hotline', 'orders', 'orders.source_record') }}
      {% if is_incremental() %} and {{ touched_orders('orders.order_no') }}{% endif %}
),

hotline as (
    select
        orders.*,
        districts.district_code is not null as district_ok,
        categories.category_code is not null as category_ok,
        streets.street_code is not null and streets.district_code = orders.district_code as street_ok,
        orders.received_at is not null and orders.received_at <= orders.updated_at as received_ok
    from staged_hotline as orders
    left join {{ ref('ref_districts') }} as districts on districts.district_code = orders.district_code
    left join {{ ref('ref_categories') }} as categories on categories.category_code = orders.category_code
    left join {{ ref('ref_streets') }} as streets on streets.street_code = orders.street_code
),

department_ranked as (
    select tickets.*, row_number() over (partition by order_no order by system_rank) as precedence
    from {{ ref('int_department_tickets') }} as tickets
    where not has_unmapped_codes and received_at is not null and district_code is not null
      and category_code is not null
      {% if is_incremental() %} and {{ touched_orders('order_no') }}{% endif %}
),

department as (
    select * from department_ranked where precedence = 1
),

lead_department_close as (
    -- the close reported by the system of the unit that currently leads the order (after 改派)
    select tickets.order_no, max(tickets.closed_at) as closed_at
    from {{ ref('int_department_tickets') }} as tickets
    join {{ ref('int_work_order_lifecycle') }} as lifecycle
        on lifecycle.order_no = tickets.order_no and lifecycle.lead_dept_code = tickets.department_code
    where tickets.role = 'lead' and tickets.closed_at is not null
      {% if is_incremental() %} and {{ touched_orders('tickets.order_no') }}{% endif %}
    group by tickets.order_no
),

visits_ranked as (
    -- a visit with an unknown result code, or dated before the order was received, is not usable
    select visits.*, row_number() over (partition by visits.order_no order by visits.visited_at desc,
                                                                              visits.visit_id desc) as recency
    from {{ ref('stg_survey__visits') }} as visits
    join hotline on hotline.order_no = visits.order_no
    where not visits.has_unmapped_codes and visits.visited_at is not null
      and {{ not_quarantined('survey', 'visits', 'visits.source_record') }}
      and (not hotline.received_ok or visits.visited_at >= hotline.received_at)
      {% if is_incremental() %} and {{ touched_orders('visits.order_no') }}{% endif %}
),

lifecycle as (
    select * from {{ ref('int_work_order_lifecycle') }}
    {% if is_incremental() %}where {{ touched_orders('order_no') }}{% endif %}
),

unified as (
    select
        hotline.order_no,
        hotline.channel_code,
        hotline.demand_type_code,
        hotline.urgency,
        case when hotline.category_ok then hotline.category_code else department.category_code end as category_code,
        case when hotline.district_ok then hotline.district_code else department.district_code end as district_code,
        case when hotline.district_ok and hotline.street_ok then hotline.street_code
             when not hotline.district_ok then department.street_code end as street_code,
        case when hotline.district_ok and hotline.street_ok then hotline.community_code end as community_code,
        case when hotline.received_ok then hotline.received_at else department.received_at end as received_at,
        case
            when not (hotline.received_ok and hotline.district_ok and hotline.category_ok)
                 and department.order_no is not null then department.source_system
            else 'hotline'
        end as intake_source,
        hotline.title,
        hotline.content,
        hotline.is_confidential,
        hotline.external_ref,
        hotline.status,
        coalesce(lifecycle.lead_dept_code, hotline.lead_dept_code) as lead_dept_code,
        hotline.assist_dept_codes,
        coalesce(lifecycle.is_direct_answer, hotline.is_direct_answer, false) as is_direct_answer,
        hotline.parent_order_no,
        coalesce(hotline.caller_phone_pseudonym, hotline.caller_id_no_pseudonym) as caller_key,
        hotline.caller_phone_masked,
        lifecycle.dispatched_at,
        lifecycle.first_dispatched_at,
        lifecycle.signed_at,
        lifecycle.first_closed_at,
        case
            when hotline.closed_at is not null then hotline.closed_at
            when lead_department_close.closed_at > hotline.updated_at then lead_department_close.closed_at
        end as closed_at,
        hotline.due_at as reported_due_at,
        coalesce(lifecycle.is_returned, false) as is_returned,
        coalesce(lifecycle.is_reassigned, false) as is_reassigned,
        coalesce(lifecycle.is_extended, false) as is_extended,
        coalesce(lifecycle.is_supervised, false) as is_supervised,
        coalesce(lifecycle.is_redone, false) as is_redone,
        coalesce(lifecycle.is_merged, false) as is_merged,
        hotline.updated_at,
        lifecycle.last_event_recorded_at,
        department.updated_at as department_updated_at,
        greatest(hotline.load_id, coalesce(lifecycle.last_event_load_id, hotline.load_id),
                 coalesce(department.load_id, hotline.load_id)) as intake_load_id,
        hotline.source_record
    from hotline
    left join department on department.order_no = hotline.order_no
    left join lead_department_close on lead_department_close.order_no = hotline.order_no
    left join lifecycle on lifecycle.order_no = hotline.order_no
    where hotline.order_no is not null
)

select
    unified.*,
    visits.visited_at,
    visits.resolution_name as resolution,
    visits.satisfaction_name as satisfaction,
    greatest(unified.updated_at, coalesce(unified.last_event_recorded_at, unified.updated_at),
             coalesce(unified.department_updated_at, unified.updated_at),
             coalesce(visits.visited_at, unified.updated_at)) as source_updated_at,
    -- the newest load that touched the order in any system: drives incremental runs (a load id,
    -- not a business time, so a source whose clock runs ahead cannot hide later changes)
    greatest(unified.intake_load_id, coalesce(visits.load_id, unified.intake_load_id)) as source_load_id,
    case
        when unified.received_at is null then 'no usable received time in any system'
        when unified.district_code is null then 'district unknown in every system'
        when unified.category_code is null then 'category unknown in every system'
        when unified.demand_type_code is null then 'demand type missing'
    end as rejection_reason
from unified
left join visits_ranked as visits
    on visits.order_no = unified.order_no and visits.recency = 1
    and visits.visited_at >= unified.closed_at  -- a follow-up counts for the close it follows (重办 resets it)
