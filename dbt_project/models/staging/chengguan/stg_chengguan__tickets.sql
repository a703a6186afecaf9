-- 城管局 tickets from the daily GBK CSV drops (Chinese headers). Each drop is a snapshot of the orders
-- whose state changed that day, so the raw table holds several rows per order.
-- Grain: one row per order_no (工单编号): the latest snapshot by 更新时间 (updated_at). Ties (the same
-- order with the same update time, e.g. a conflicting duplicate line inside one file) are broken
-- deterministically: the later drop file first (file names carry the drop date), then the FIRST line
-- in that file (a repeated line is a re-send, not newer information). has_duplicate_versions marks
-- orders whose chosen update time appears more than once; snapshot_count says how many snapshots
-- of the order were loaded.
-- District, street (within the district) and category arrive as Chinese names and map to codes
-- through ref_districts, ref_streets and ref_categories (level-3 name); 办理状态 through
-- map_chengguan_statuses. Unknown names map to NULL and are listed in unmapped_codes.
-- Times are 'YYYY/M/D H:MM' local text (Asia/Shanghai wall clock, no seconds).
with source as (
    select * from {{ source('raw_chengguan', 'tickets') }}
),

renamed as (
    select
        cast(_dlt_load_id as decimal(20, 7)) as load_id,
        nullif(trim("工单编号"), '') as order_no,
        "_source_file" as source_file,
        "_source_line" as source_line,
        nullif(trim("区县"), '') as source_district,
        nullif(trim("街道"), '') as source_street,
        nullif(trim("问题类别"), '') as source_category,
        nullif(trim("办理状态"), '') as source_status,
        "标题" as title,
        "诉求内容" as content,
        nullif(trim("联系人"), '') as caller_name_masked,
        "联系人_pseudonym" as caller_name_pseudonym,
        nullif(trim("联系电话"), '') as caller_phone_masked,
        "联系电话_pseudonym" as caller_phone_pseudonym,
        "处理结果" as reply_content,
        "受理时间" as received_at_text,
        {{ parse_timestamp('"受理时间"', '%Y/%m/%d %H:%M') }} as received_at,
        {{ parse_timestamp('"签收时间"', '%Y/%m/%d %H:%M') }} as signed_at,
        {{ parse_timestamp('"办结时间"', '%Y/%m/%d %H:%M') }} as closed_at,
        {{ parse_timestamp('"更新时间"', '%Y/%m/%d %H:%M') }} as updated_at
    from source
),

latest as (
    {{ latest_file_snapshot('renamed', 'order_no') }}
),

mapped as (
    select
        latest.*,
        districts.district_code,
        streets.street_code,
        categories.category_code,
        statuses.status,
        nullif(concat_ws(', ',
            case when latest.source_district is not null and districts.district_code is null
                 then '区县=' || latest.source_district end,
            case when latest.source_street is not null and streets.street_code is null
                 then '街道=' || latest.source_street end,
            case when latest.source_category is not null and categories.category_code is null
                 then '问题类别=' || latest.source_category end,
            case when latest.source_status is not null and statuses.status is null
                 then '办理状态=' || latest.source_status end
        ), '') as unmapped_codes
    from latest
    left join {{ ref('ref_districts') }} as districts on districts.district_name = latest.source_district
    left join {{ ref('ref_streets') }} as streets
        on streets.street_name = latest.source_street and streets.district_code = districts.district_code
    left join {{ ref('ref_categories') }} as categories on categories.category_name = latest.source_category
    left join {{ ref('map_chengguan_statuses') }} as statuses on statuses.source_value = latest.source_status
)

select
    load_id,
    order_no,
    source_file || ':' || cast(source_line as varchar) as source_record,
    source_file,
    source_line,
    received_at_text,
    received_at,
    district_code,
    source_district,
    street_code,
    source_street,
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
    signed_at,
    closed_at,
    reply_content,
    updated_at,
    snapshot_count,
    versions_at_update > 1 as has_duplicate_versions,
    unmapped_codes,
    unmapped_codes is not null as has_unmapped_codes
from mapped
