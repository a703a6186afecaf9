with source as (
    select * from {{ source('raw_zhujian', 'gd_main') }}
),

districts as (
    select district_code, district_name from {{ ref('ref_districts') }}
),

categories as (
    select source_code, category_code from {{ ref('map_zhujian_categories') }}
)

select
    source.bjbh as ticket_id,
    source.gdbh as order_no,
    case source.zbxb when '主办' then 'lead' when '协办' then 'assist' end as role,
    {{ parse_timestamp('source.slsj', '%Y-%m-%d %H:%M:%S') }} as received_at,
    categories.category_code,
    districts.district_code,
    case source.bjzt when '1' then 'pending' when '2' then 'handling' when '3' then 'closed'
        when '9' then 'returned' end as ticket_status,
    {{ parse_timestamp('source.blsx', '%Y-%m-%d %H:%M:%S') }} as due_at,
    {{ parse_timestamp('source.bjsj', '%Y-%m-%d %H:%M:%S') }} as closed_at,
    {{ parse_timestamp('source.gxsj', '%Y-%m-%d %H:%M:%S') }} as updated_at
from source
left join districts on districts.district_name = source.qy
left join categories on categories.source_code = source.wtfl
