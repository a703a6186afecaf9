select
    event_id,
    order_no,
    event_type,
    dept_code,
    role,
    note,
    {{ iso_to_shanghai('occurred_at') }} as occurred_at,
    {{ iso_to_shanghai('recorded_at') }} as recorded_at
from {{ source('raw_hotline', 'events') }}
