{{ config(materialized='incremental', unique_key='raw_event_id', incremental_strategy='delete+insert') }}
-- The raw events trimmed, cast and parsed once (macros/raw_loads.sql: only the raw rows of loads
-- not yet here are parsed). Grain: one row per raw row (raw_event_id, the raw primary key as sent).
-- No seed joins here: the reference seeds can change, so stg_hotline__events checks the codes.
select
    event_id as raw_event_id,
    cast(_dlt_load_id as decimal(20, 7)) as load_id,
    nullif(trim(event_id), '') as event_id,
    'event_id=' || nullif(trim(event_id), '') as source_record,
    nullif(trim(order_no), '') as order_no,
    nullif(trim(event_type), '') as event_type,
    nullif(trim(dept_code), '') as dept_code,
    nullif(trim(role), '') as role,
    note,
    {{ iso_to_shanghai('occurred_at') }} as occurred_at,
    {{ iso_to_shanghai('recorded_at') }} as recorded_at
from {{ source('raw_hotline', 'events') }}
where {{ unseen_raw_loads(source('raw_hotline', 'events')) }}
