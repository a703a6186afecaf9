-- depends_on: {{ order_sources_dependencies() }}
-- The orders whose intermediate rows this build recomputes (see macros/incremental_by_order.sql):
-- an order is touched when one of its staged records came in a load the previous build had not
-- seen, when the quarantine verdict on one of its records changed since then, or when it shares an
-- id with a touched order's record (int_work_order_events keeps a survey visit only when no hotline
-- event has its id, in any order). Every order is touched when the reference seeds changed or
-- when there is no previous state (int_build_state, written after the facts).
-- The new loads and changed verdicts (a handful a day) are looked up first and written into the
-- query as values, so each staging view is filtered before its joins instead of scanned in full.
-- Grain: one row per order_no.
{%- set state = adapter.get_relation(database=this.database, schema=this.schema,
                                     identifier='int_build_state') if execute else none %}
{%- set everything = state is none %}
{%- set new_loads, changed_verdicts = {}, {} %}
{%- if state is not none %}
    {%- set references = run_query("select count(*) from " ~ state ~ " where kind = 'reference' and fingerprint = "
                                   ~ reference_fingerprint()) %}
    {%- set everything = references.columns[0].values()[0] == 0 %}
    {%- set loads = run_query("select staged_model, cast(load_id as varchar) from (" ~ staged_loads() ~ ") as now_loads "
                              ~ "except select staged_model, cast(load_id as varchar) from " ~ state
                              ~ " where kind = 'load'") %}
    {%- for row in loads.rows %}
        {%- do new_loads.setdefault(row[0], []).append(row[1]) %}
    {%- endfor %}
    {%- set seen = "select source, table_name, record_key, action, column_name from " ~ state ~ " where kind = 'quarantine'" %}
    {%- set verdicts = run_query(
        "select distinct source, table_name, record_key from ((" ~ quarantine_verdicts() ~ " except " ~ seen ~ ") "
        ~ "union (" ~ seen ~ " except " ~ quarantine_verdicts() ~ ")) as changed") %}
    {%- for row in verdicts.rows %}
        {%- do changed_verdicts.setdefault(row[0] ~ '.' ~ row[1], []).append(row[2]) %}
    {%- endfor %}
{%- endif %}
with direct as (
    select cast(null as varchar) as order_no
    {%- for record in order_records() %}
    {%- set verdict_keys = changed_verdicts.get(record.source ~ '.' ~ record.table, []) %}
    {%- if everything %}
    union select order_no from {{ ref(record.model) }}
    {%- else %}
    {%- if record.model in new_loads %}
    union select order_no from {{ ref(record.model) }}
          where load_id in ({% for load_id in new_loads[record.model] %}{{ load_id }}{% if not loop.last %}, {% endif %}{% endfor %})
    {%- endif %}
    {%- if verdict_keys %}
    union select order_no from {{ ref(record.model) }} where source_record in ({{ sql_literals(verdict_keys) }})
    {%- endif %}
    {%- endif %}
    {%- endfor %}
)
{%- if not everything %},

shared_ids as (
    -- a survey visit and a hotline event with one id in two orders: either touched touches the other
    select visits.order_no as visit_order, events.order_no as event_order
    from {{ ref('stg_survey__visits') }} as visits
    join {{ ref('stg_hotline__events') }} as events on events.event_id = visits.visit_id
    where visits.order_no <> events.order_no
)
{%- endif %}

select order_no from direct where order_no is not null
{%- if not everything %}
union
select visit_order from shared_ids where event_order in (select order_no from direct)
union
select event_order from shared_ids where visit_order in (select order_no from direct)
{%- endif %}
