-- Follow-up visits (回访) from the survey system's daily JSON exports. Grain: one row per visit_id
-- (the raw table is merged on it). visit_time is Unix epoch seconds (UTC) and becomes Asia/Shanghai
-- wall-clock time. solved (1/2/3) and satisfaction (1/2/3/0) map to the platform's follow-up
-- vocabulary through map_survey_resolution and map_survey_satisfaction; an unknown value maps to
-- NULL and is listed in unmapped_codes (solved may legitimately be empty: no resolution asked).
with source as (
    select * from {{ source('raw_survey', 'visits') }}
),

renamed as (
    select
        cast(_dlt_load_id as decimal(20, 7)) as load_id,
        nullif(trim(visit_id), '') as visit_id,
        nullif(trim(ticket), '') as order_no,
        "_source_file" as source_file,
        "_source_line" as source_line,
        nullif(trim(solved), '') as source_resolution,
        nullif(trim(satisfaction), '') as source_satisfaction,
        nullif(trim(visitor), '') as visitor_id,
        visit_time as visited_at_text,
        {{ epoch_to_shanghai('visit_time') }} as visited_at
    from source
)

select
    renamed.load_id,
    renamed.visit_id,
    renamed.source_file || ':' || cast(renamed.source_line as varchar) as source_record,
    renamed.order_no,
    renamed.source_file,
    renamed.source_line,
    renamed.visited_at_text,
    renamed.visited_at,
    resolutions.resolution,
    resolutions.resolution_name,
    renamed.source_resolution,
    satisfactions.satisfaction,
    satisfactions.satisfaction_name,
    renamed.source_satisfaction,
    renamed.visitor_id,
    nullif(concat_ws(', ',
        case when renamed.source_resolution is not null and resolutions.resolution is null
             then 'solved=' || renamed.source_resolution end,
        case when renamed.source_satisfaction is not null and satisfactions.satisfaction is null
             then 'satisfaction=' || renamed.source_satisfaction end
    ), '') as unmapped_codes,
    (renamed.source_resolution is not null and resolutions.resolution is null)
        or (renamed.source_satisfaction is not null and satisfactions.satisfaction is null) as has_unmapped_codes
from renamed
left join {{ ref('map_survey_resolution') }} as resolutions on resolutions.source_code = renamed.source_resolution
left join {{ ref('map_survey_satisfaction') }} as satisfactions on satisfactions.source_code = renamed.source_satisfaction
