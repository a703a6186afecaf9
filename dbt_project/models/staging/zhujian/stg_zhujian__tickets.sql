-- 住建局 tickets (gd_main) in the platform's vocabulary. Grain: one row per ticket_id (bjbh, the
-- bureau's own number; the raw table is merged on it). order_no (gdbh) is NOT unique: the bureau
-- may hold two tickets for one order (the sandbox injects such conflicting duplicates).
-- The bureau's codes map to standard codes through seeds: district and street by Chinese name
-- (ref_districts, ref_streets within the district), category (wtfl 3001..) through
-- map_zhujian_categories, status (bjzt 1/2/3/9) through map_zhujian_statuses, role (主办/协办) through
-- map_zhujian_roles. A value a seed does not know maps to NULL and is listed in unmapped_codes.
-- Times are local 'YYYY-MM-DD HH:MM:SS' text (Asia/Shanghai wall clock).
with source as (
    select * from {{ source('raw_zhujian', 'gd_main') }}
),

renamed as (
    select
        cast(_dlt_load_id as decimal(20, 7)) as load_id,
        nullif(trim(bjbh), '') as ticket_id,
        nullif(trim(gdbh), '') as order_no,
        nullif(trim(zbxb), '') as source_role,
        nullif(trim(wtfl), '') as source_category,
        nullif(trim(qy), '') as source_district,
        nullif(trim(jd), '') as source_street,
        nullif(trim(bjzt), '') as source_status,
        nullif(trim(dz), '') as address,
        bt as title,
        nr as content,
        nullif(trim(lxr), '') as caller_name_masked,
        lxr_pseudonym as caller_name_pseudonym,
        nullif(trim(lxdh), '') as caller_phone_masked,
        lxdh_pseudonym as caller_phone_pseudonym,
        hfnr as reply_content,
        slsj as received_at_text,
        {{ parse_timestamp('slsj', '%Y-%m-%d %H:%M:%S') }} as received_at,
        {{ parse_timestamp('blsx', '%Y-%m-%d %H:%M:%S') }} as due_at,
        {{ parse_timestamp('bjsj', '%Y-%m-%d %H:%M:%S') }} as closed_at,
        {{ parse_timestamp('gxsj', '%Y-%m-%d %H:%M:%S') }} as updated_at
    from source
),

mapped as (
    select
        renamed.*,
        roles.role,
        categories.category_code,
        districts.district_code,
        streets.street_code,
        statuses.status,
        nullif(concat_ws(', ',
            case when renamed.source_role is not null and roles.role is null
                 then 'zbxb=' || renamed.source_role end,
            case when renamed.source_category is not null and categories.category_code is null
                 then 'wtfl=' || renamed.source_category end,
            case when renamed.source_district is not null and districts.district_code is null
                 then 'qy=' || renamed.source_district end,
            case when renamed.source_street is not null and streets.street_code is null
                 then 'jd=' || renamed.source_street end,
            case when renamed.source_status is not null and statuses.status is null
                 then 'bjzt=' || renamed.source_status end
        ), '') as unmapped_codes
    from renamed
    left join {{ ref('map_zhujian_roles') }} as roles on roles.source_value = renamed.source_role
    left join {{ ref('map_zhujian_categories') }} as categories on categories.source_code = renamed.source_category
    left join {{ ref('ref_districts') }} as districts on districts.district_name = renamed.source_district
    left join {{ ref('ref_streets') }} as streets
        on streets.street_name = renamed.source_street and streets.district_code = districts.district_code
    left join {{ ref('map_zhujian_statuses') }} as statuses on statuses.source_code = renamed.source_status
)

select
    load_id,
    ticket_id,
    'bjbh=' || ticket_id as source_record,
    order_no,
    role,
    source_role,
    received_at_text,
    received_at,
    category_code,
    source_category,
    district_code,
    source_district,
    street_code,
    source_street,
    address,
    title,
    content,
    caller_name_masked,
    caller_name_pseudonym,
    caller_phone_masked,
    caller_phone_pseudonym,
    status,
    source_status,
    due_at,
    closed_at,
    reply_content,
    updated_at,
    unmapped_codes,
    unmapped_codes is not null as has_unmapped_codes
from mapped
