-- 供电公司 tickets from the daily XLSX drops. Each drop is a snapshot of the tickets whose state
-- changed that day, so the raw table holds several rows per ticket.
-- Grain: one row per ticket_id (work_id, the company's own work-order id; one per 12345 order):
-- the latest snapshot by update_time (updated_at). Ties (same ticket, same update time) are broken
-- deterministically: the later drop file first (file names carry the drop date), then the FIRST
-- line in that file. has_duplicate_versions marks tickets whose chosen update time appears more
-- than once; snapshot_count says how many snapshots were loaded.
-- District arrives as pinyin (ref_districts.district_pinyin); fault_type E01/E02 maps to a
-- level-3 category through map_gongdian_fault_types, where E99 (其他) is a known code that names no
-- specific category (NULL category_code, not flagged); state NEW/DOING/DONE/REJECTED through
-- map_gongdian_states. Unknown codes map to NULL and are listed in unmapped_codes.
-- Times are 'YYYY-MM-DD HH:MM:SS' local text (Asia/Shanghai wall clock).
with source as (
    select * from {{ source('raw_gongdian', 'tickets') }}
),

renamed as (
    select
        cast(_dlt_load_id as decimal(20, 7)) as load_id,
        nullif(trim(work_id), '') as ticket_id,
        nullif(trim(ticket_no), '') as order_no,
        "_source_file" as source_file,
        "_source_line" as source_line,
        nullif(lower(trim(district)), '') as source_district,
        nullif(upper(trim(fault_type)), '') as source_category,
        nullif(upper(trim(state)), '') as source_status,
        summary as title,
        detail as content,
        nullif(trim(contact), '') as caller_name_masked,
        contact_pseudonym as caller_name_pseudonym,
        nullif(trim(phone), '') as caller_phone_masked,
        phone_pseudonym as caller_phone_pseudonym,
        accept_time as received_at_text,
        {{ parse_timestamp('accept_time', '%Y-%m-%d %H:%M:%S') }} as received_at,
        {{ parse_timestamp('finish_time', '%Y-%m-%d %H:%M:%S') }} as closed_at,
        {{ parse_timestamp('update_time', '%Y-%m-%d %H:%M:%S') }} as updated_at
    from source
),

latest as (
    {{ latest_file_snapshot('renamed', 'ticket_id') }}
),

mapped as (
    select
        latest.*,
        districts.district_code,
        fault_types.category_code,
        states.status,
        nullif(concat_ws(', ',
            case when latest.source_district is not null and districts.district_code is null
                 then 'district=' || latest.source_district end,
            case when latest.source_category is not null and fault_types.source_code is null
                 then 'fault_type=' || latest.source_category end,
            case when latest.source_status is not null and states.status is null
                 then 'state=' || latest.source_status end
        ), '') as unmapped_codes
    from latest
    left join {{ ref('ref_districts') }} as districts on districts.district_pinyin = latest.source_district
    left join {{ ref('map_gongdian_fault_types') }} as fault_types on fault_types.source_code = latest.source_category
    left join {{ ref('map_gongdian_states') }} as states on states.source_code = latest.source_status
)

select
    load_id,
    ticket_id,
    source_file || ':' || cast(source_line as varchar) as source_record,
    order_no,
    source_file,
    source_line,
    received_at_text,
    received_at,
    district_code,
    source_district,
    category_code,
    source_category,
    title,
    content,
    caller_name_masked,
    caller_name_pseudonym,
    caller_phone_masked,
    caller_phone_pseudonym,
    status,
    source_status,
    closed_at,
    updated_at,
    snapshot_count,
    versions_at_update > 1 as has_duplicate_versions,
    unmapped_codes,
    unmapped_codes is not null as has_unmapped_codes
from mapped
