-- 区县维度 (versioned: valid_from/valid_to for boundary changes; one version today).
select
    districts.district_code,
    districts.district_name,
    count(streets.street_code) as street_count,
    cast('2024-01-01' as date) as valid_from,
    cast(null as date) as valid_to,
    true as is_current
from {{ ref('ref_districts') }} as districts
left join {{ ref('ref_streets') }} as streets on streets.district_code = districts.district_code
group by districts.district_code, districts.district_name
