-- The app's service list (Open311 GET services). Grain: one row per service_code.
with source as (
    select * from {{ source('raw_app311', 'services') }}
),

renamed as (
    select
        nullif(trim(service_code), '') as service_code,
        nullif(trim(service_name), '') as service_name,
        nullif(trim(description), '') as description,
        case lower(trim(metadata)) when 'true' then true when 'false' then false end as has_metadata,
        nullif(trim("type"), '') as service_type,
        nullif(trim(keywords), '') as keywords,
        nullif(trim("group"), '') as service_group
    from source
)

select
    renamed.service_code,
    'service_code=' || renamed.service_code as source_record,
    services.category_code,
    renamed.service_name,
    renamed.description,
    renamed.has_metadata,
    renamed.service_type,
    renamed.keywords,
    renamed.service_group,
    case when services.service_code is null then 'service_code=' || renamed.service_code end as unmapped_codes,
    services.service_code is null as has_unmapped_codes
from renamed
left join {{ ref('map_app311_services') }} as services on services.service_code = renamed.service_code
