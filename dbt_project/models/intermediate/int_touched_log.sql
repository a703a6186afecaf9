{{ config(materialized='incremental', incremental_strategy='append',
          post_hook="delete from {{ this }} where build_id not in (select build_id from {{ this }} "
                    ~ "group by build_id order by max(built_at) desc limit {{ var('touched_log_builds') }})") }}
-- The facts' change log: per build, the orders whose fact rows the build may rewrite — the touched
-- orders (int_touched_orders) and the orders still open in fct_work_orders (rebuilt every time: their
-- 超期 flag moves with the newest data). The facts depend on it, so it is written before they change
-- and a build that fails midway is listed too. Readers that remember what they saw of the facts (the
-- marts' quality suites: expectations.core.Scope) read only the orders of builds they have not seen.
-- The last `touched_log_builds` builds are kept. Grain: one row per (build_id, order_no).
{%- set facts = adapter.get_relation(database=this.database, schema='marts', identifier='fct_work_orders')
    if execute else none %}
select cast('{{ invocation_id }}' as varchar) as build_id, {{ dbt.current_timestamp() }} as built_at, order_no
from (
    select order_no from {{ ref('int_touched_orders') }}
    {%- if facts is not none %}
    union
    select order_no from {{ facts }} where closed_at is null
    {%- endif %}
) as rewritten
