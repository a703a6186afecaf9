{{ config(materialized='incremental', incremental_strategy='replace_touched_orders',
          on_schema_change='fail') }}
-- depends_on: {{ ref('int_touched_orders') }}
-- The departments' own view of the work orders they handle, one row per (system, order_no):
-- 住建局 (SQL database), 城管局 (CSV drops), 供电公司 (XLSX drops). Used as a fallback for intake
-- fields the hotline sent unusable, and for closes the hotline has not recorded yet. Records that
-- failed a critical expectation (quality.quarantine) are left out.
with zhujian as (
    select 'zhujian' as source_system, 'ZJJ' as department_code, 1 as system_rank, order_no, role, received_at, district_code,
           street_code, category_code, status, closed_at, updated_at, has_unmapped_codes, source_record, load_id
    from {{ ref('stg_zhujian__tickets') }}
    where {{ not_quarantined('zhujian', 'gd_main', 'source_record') }}
      {% if is_incremental() %} and {{ touched_orders('order_no') }}{% endif %}
),

chengguan as (
    select 'chengguan' as source_system, 'CGJ' as department_code, 2 as system_rank, order_no, 'lead' as role, received_at, district_code,
           street_code, category_code, status, closed_at, updated_at, has_unmapped_codes, source_record, load_id
    from {{ ref('stg_chengguan__tickets') }}
    where {{ not_quarantined('chengguan', 'tickets', 'source_record') }}
      {% if is_incremental() %} and {{ touched_orders('order_no') }}{% endif %}
),

gongdian as (
    select 'gongdian' as source_system, 'GDGS' as department_code, 3 as system_rank, order_no, 'lead' as role, received_at, district_code,
           cast(null as varchar) as street_code, category_code, status, closed_at, updated_at, has_unmapped_codes,
           source_record, load_id
    from {{ ref('stg_gongdian__tickets') }}
    where {{ not_quarantined('gongdian', 'tickets', 'source_record') }}
      {% if is_incremental() %} and {{ touched_orders('order_no') }}{% endif %}
),

tickets as (
    select * from zhujian
    union all select * from chengguan
    union all select * from gongdian
),

ranked as (
    select
        tickets.*,
        row_number() over (
            partition by source_system, order_no
            order by has_unmapped_codes, updated_at desc, source_record
        ) as version_rank
    from tickets
    where order_no is not null
)

select
    source_system, department_code, system_rank, order_no, role, received_at, district_code, street_code, category_code,
    status, closed_at, updated_at, has_unmapped_codes, source_record, load_id
from ranked
where version_rank = 1
