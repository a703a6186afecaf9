-- 住建局's handling log (gd_lz, 流转记录): one action on one ticket. Grain: one row per log_id (lzid;
-- the raw table is merged on it). The bureau's action names (派单, 签收, 退回 ...) map to the
-- platform's event types through map_zhujian_actions; unknown actions give a NULL event_type and
-- are listed in unmapped_codes. The order number is not in this table: join stg_zhujian__tickets
-- on ticket_id.
with source as (
    select * from {{ source('raw_zhujian', 'gd_lz') }}
),

renamed as (
    select
        lzid as log_id,
        nullif(trim(bjbh), '') as ticket_id,
        nullif(trim(czlx), '') as source_action,
        nullif(trim(czr), '') as operator_id,
        yj as note,
        {{ parse_timestamp('czsj', '%Y-%m-%d %H:%M:%S') }} as occurred_at,
        {{ parse_timestamp('gxsj', '%Y-%m-%d %H:%M:%S') }} as recorded_at
    from source
)

select
    renamed.log_id,
    'lzid=' || cast(renamed.log_id as varchar) as source_record,
    renamed.ticket_id,
    actions.event_type,
    renamed.source_action,
    renamed.operator_id,
    renamed.note,
    renamed.occurred_at,
    renamed.recorded_at,
    case when renamed.source_action is not null and actions.event_type is null
         then 'czlx=' || renamed.source_action end as unmapped_codes,
    renamed.source_action is not null and actions.event_type is null as has_unmapped_codes
from renamed
left join {{ ref('map_zhujian_actions') }} as actions on actions.source_value = renamed.source_action
