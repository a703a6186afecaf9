{{ config(materialized='incremental', incremental_strategy='replace_touched_orders', unique_key='event_id',
          on_schema_change='fail') }}
-- depends_on: {{ ref('int_touched_orders') }}
-- The lifecycle as an event log: the hotline's events, plus follow-up visits the survey system
-- knows and the hotline does not (the survey system is authoritative for 回访 results). Records that
-- failed a critical expectation (quality.quarantine) are left out.
-- Grain: one row per event_id.
with hotline as (
    select event_id, order_no, event_type, dept_code, role, occurred_at, recorded_at, note,
           'hotline' as source_system, source_record, load_id
    from {{ ref('stg_hotline__events') }}
    where event_id is not null and order_no is not null and occurred_at is not null
      and {{ not_quarantined('hotline', 'events', 'source_record') }}
      {% if is_incremental() %} and {{ touched_orders('order_no') }}{% endif %}
),

visits as (
    select visit_id as event_id, order_no, 'visit' as event_type, cast(null as varchar) as dept_code,
           cast(null as varchar) as role, visited_at as occurred_at, visited_at as recorded_at,
           cast(null as varchar) as note, 'survey' as source_system, source_record, load_id
    from {{ ref('stg_survey__visits') }}
    where visit_id is not null and order_no is not null and visited_at is not null
      and {{ not_quarantined('survey', 'visits', 'source_record') }}
      {% if is_incremental() %} and {{ touched_orders('order_no') }}{% endif %}
)

select * from hotline
union all
select visits.* from visits
where not exists (select 1 from hotline where hotline.event_id = visits.event_id)
