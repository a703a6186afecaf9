-- Lifecycle events as recorded by the hotline. Grain: one row per event_id.
-- The parsing happens once, in base_hotline__events (an incremental table); this view adds the
-- code checks against the reference seeds, which can change.
with renamed as (
    select * from {{ ref('base_hotline__events') }}
)

select
    renamed.load_id,
    renamed.event_id,
    renamed.source_record,
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
