-- 街道/乡镇维度 with its district.
select
    streets.street_code,
    streets.street_name,
    streets.street_kind,
    streets.district_code,
    districts.district_name,
    cast('2024-01-01' as date) as valid_from,
    cast(null as date) as valid_to,
    true as is_current
from {{ ref('ref_streets') }} as streets
join {{ ref('ref_districts') }} as districts on districts.district_code = streets.district_code
