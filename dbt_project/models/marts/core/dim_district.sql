select
    districts.district_code,
    districts.district_name,
    count(streets.street_code) as street_count
from {{ ref('ref_districts') }} as districts
left join {{ ref('ref_streets') }} as streets on streets.district_code = districts.district_code
group by districts.district_code, districts.district_name
