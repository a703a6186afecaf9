-- 承办单位维度 with the peer group units are ranked in.
select department_code, department_name, peer_group, nullif(district_code, '') as district_code
from {{ ref('ref_departments') }}
