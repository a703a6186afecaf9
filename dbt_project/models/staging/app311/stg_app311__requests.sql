-- Service requests from the city app (Open311 GeoReport v2). Grain: one row per request_id
-- (service_request_id; the raw table is merged on it). Open311 times are UTC ('...Z') and become
-- Asia/Shanghai wall-clock time here. The app's service codes (S001..) map to the platform's
-- level-3 categories through the seed map_app311_services; an unknown service code gives a NULL
-- category_code and is listed in unmapped_codes.
with source as (
    select * from {{ source('raw_app311', 'requests') }}
),

renamed as (
    select
        nullif(trim(service_request_id), '') as request_id,
        nullif(trim(service_code), '') as service_code,
        nullif(trim(service_name), '') as service_name,
        description as content,
        nullif(trim(status), '') as status,
        status_notes as reply_content,
        nullif(trim(agency_responsible), '') as agency_name,
        nullif(trim(service_notice), '') as service_notice,
        nullif(trim(address), '') as address,
        nullif(trim(address_id), '') as address_id,
        nullif(trim(zipcode), '') as zipcode,
        case when trim("lat") similar to '-?[0-9]{1,3}([.][0-9]+)?' then cast(trim("lat") as double precision) end
            as latitude,
        case when trim("long") similar to '-?[0-9]{1,3}([.][0-9]+)?' then cast(trim("long") as double precision) end
            as longitude,
        nullif(trim(media_url), '') as media_url,
        requested_datetime as received_at_text,
        {{ utc_iso_to_shanghai('requested_datetime') }} as received_at,
        {{ utc_iso_to_shanghai('expected_datetime') }} as due_at,
        {{ utc_iso_to_shanghai('updated_datetime') }} as updated_at
    from source
)

select
    renamed.request_id,
    'service_request_id=' || renamed.request_id as source_record,
    renamed.service_code,
    services.category_code,
    renamed.service_name,
    renamed.content,
    renamed.status,
    renamed.reply_content,
    renamed.agency_name,
    departments.department_code as lead_dept_code,
    renamed.service_notice,
    renamed.address,
    renamed.address_id,
    renamed.zipcode,
    renamed.latitude,
    renamed.longitude,
    renamed.media_url,
    renamed.received_at_text,
    renamed.received_at,
    renamed.due_at,
    renamed.updated_at,
    case when renamed.service_code is not null and services.service_code is null
         then 'service_code=' || renamed.service_code end as unmapped_codes,
    renamed.service_code is not null and services.service_code is null as has_unmapped_codes
from renamed
left join {{ ref('map_app311_services') }} as services on services.service_code = renamed.service_code
left join {{ ref('ref_departments') }} as departments on departments.department_name = renamed.agency_name
