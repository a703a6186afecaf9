-- 社区/村维度 with its street and district (区 → 街道 → 社区).
select
    communities.community_code,
    communities.community_name,
    streets.street_code,
    streets.street_name,
    streets.district_code,
    districts.district_name,
    cast('2024-01-01' as date) as valid_from,
    cast(null as date) as valid_to,
    true as is_current
from {{ ref('ref_communities') }} as communities
join {{ ref('ref_streets') }} as streets on streets.street_code = communities.street_code
join {{ ref('ref_districts') }} as districts on districts.district_code = streets.district_code
