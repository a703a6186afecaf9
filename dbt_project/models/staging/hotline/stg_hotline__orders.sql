with source as (
    select * from {{ source('raw_hotline', 'orders') }}
)

select
    order_no,
    channel_code,
    demand_type_code,
    urgency,
    trim(title) as title,
    trim(content) as content,
    category_code,
    district_code,
    street_code,
    community_code,
    status,
    lead_dept_code,
    assist_dept_codes,
    coalesce(is_direct_answer = 'true', false) as is_direct_answer,
    parent_order_no,
    external_ref,
    received_at as received_at_text,
    {{ iso_to_shanghai('received_at') }} as received_at,
    {{ iso_to_shanghai('due_at') }} as due_at,
    {{ iso_to_shanghai('closed_at') }} as closed_at,
    {{ iso_to_shanghai('updated_at') }} as updated_at
from source
