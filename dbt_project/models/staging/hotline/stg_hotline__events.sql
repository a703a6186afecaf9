-- Lifecycle events as recorded by the hotline. Grain: one row per event_id.
with source as (
    select * from {{ source('raw_hotline', 'events') }}
),

renamed as (
    select
        cast(_dlt_load_id as decimal(20, 7)) as load_id,
        nullif(trim(event_id), '') as event_id,
        nullif(trim(order_no), '') as order_no,
        nullif(trim(event_type), '') as event_type,
        nullif(trim(dept_code), '') as dept_code,
        nullif(trim(role), '') as role,
        note,
        {{ iso_to_shanghai('occurred_at') }} as occurred_at,
        {{ iso_to_shanghai('recorded_at') }} as recorded_at
    from source
)

select
    renamed.load_id,
    renamed.event_id,
    'event_id=' || renamed.event_id as source_record,
    renamed.order_no,
    renamed.event_type,
    renamed.dept_code,
    renamed.role,
    renamed.note,
    renamed.occurred_at,
    renamed.recorded_at,
    nullif(concat_ws(', ',
        case when renamed.event_type is not null and event_types.event_type is null
             then 'event_type=' || renamed.event_type end,
        case when renamed.dept_code is not null and departments.department_code is null
             then 'dept_code=' || renamed.dept_code end
    ), '') as unmapped_codes,
    (renamed.event_type is not null and event_types.event_type is null)
        or (renamed.dept_code is not null and departments.department_code is null) as has_unmapped_codes
from renamed
left join {{ ref('ref_event_types') }} as event_types on event_types.event_type = renamed.event_type
left join {{ ref('ref_departments') }} as departments on departments.department_code = renamed.dept_code
