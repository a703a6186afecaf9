{{ config(materialized='incremental', unique_key='raw_order_no', incremental_strategy='delete+insert') }}
-- The raw work orders trimmed, cast and parsed once (macros/raw_loads.sql: only the raw rows of
-- loads not yet here are parsed). Grain: one row per raw row (raw_order_no, the raw primary key as
-- sent). No seed joins here: the reference seeds can change, so stg_hotline__orders checks the codes.
-- Codes and ids are trimmed; free text (title, content, reply) is kept exactly as sent (the
-- engines disagree on which Unicode spaces trim() removes, and text analytics normalises it).
select
    order_no as raw_order_no,
    cast(_dlt_load_id as decimal(20, 7)) as load_id,
    nullif(trim(order_no), '') as order_no,
    'order_no=' || nullif(trim(order_no), '') as source_record,
    nullif(trim(channel_code), '') as channel_code,
    nullif(trim(demand_type_code), '') as demand_type_code,
    nullif(trim(urgency), '') as urgency,
    title,
    content,
    nullif(trim(category_code), '') as category_code,
    nullif(trim(district_code), '') as district_code,
    nullif(trim(street_code), '') as street_code,
    nullif(trim(community_code), '') as community_code,
    nullif(trim(address), '') as address,
    nullif(trim(caller_name), '') as caller_name_masked,
    caller_name_pseudonym,
    nullif(trim(caller_phone), '') as caller_phone_masked,
    caller_phone_pseudonym,
    nullif(trim(caller_id_no), '') as caller_id_no_masked,
    caller_id_no_pseudonym,
    case trim(confidential) when '1' then true when '0' then false end as is_confidential,
    nullif(trim(external_ref), '') as external_ref,
    nullif(trim(status), '') as status,
    nullif(trim(lead_dept_code), '') as lead_dept_code,
    -- sent as a JSON array of codes ('["CGJ","ZJJ"]'); carried as comma-separated text
    nullif(replace(replace(replace(replace(assist_dept_codes, '[', ''), ']', ''), '"', ''), ' ', ''), '')
        as assist_dept_codes,
    case lower(trim(is_direct_answer)) when 'true' then true when 'false' then false end as is_direct_answer,
    nullif(trim(parent_order_no), '') as parent_order_no,
    reply_content,
    received_at as received_at_text,
    {{ iso_to_shanghai('received_at') }} as received_at,
    {{ iso_to_shanghai('due_at') }} as due_at,
    {{ iso_to_shanghai('closed_at') }} as closed_at,
    {{ iso_to_shanghai('updated_at') }} as updated_at
from {{ source('raw_hotline', 'orders') }}
where {{ unseen_raw_loads(source('raw_hotline', 'orders')) }}
