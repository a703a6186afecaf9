{# Incremental by order: the intermediate models and the core facts rebuild only the rows of the
   orders touched since the previous build (int_touched_orders), reading each touched order's
   records in full, so per-order windows and aggregates see all of them.

   An order is touched when one of its staged records arrived in a load the previous build had not
   seen, or when the quarantine verdict on one of its records changed (a quality.quarantine row
   added or removed: the quarantine is rewritten from scratch each run and carries no change marker,
   so int_build_state keeps the set the models last saw and the two are compared). A change of any
   reference seed (fingerprint in int_build_state) touches every order, as does a missing state.

   order_records()        the staged records the intermediate models read: staging model, and the
                          (source, table_name) its quarantine rows carry
   reference_seeds()      every seed (kept equal to seeds/ by tests/warehouse/test_incremental.py)
   staged_loads()         one row per (staged_model, load_id) present now
   order_sources_dependencies()  refs of what int_touched_orders reads only when it runs, for dbt's DAG
   quarantine_verdicts()  the quarantine rows the intermediate models act on, one per verdict
   reference_fingerprint()  one md5 over the content of every seed
   touched_orders()       `order_no in (...)` the touched set, for a model's incremental filter
   get_incremental_replace_touched_orders_sql  the strategy: delete every row of a touched order
                          (and any row whose unique key is in the new batch), insert the batch #}

{% macro order_records() %}
    {{ return([
        {'model': 'stg_hotline__orders', 'source': 'hotline', 'table': 'orders', 'raw': ['raw_hotline', 'orders']},
        {'model': 'stg_hotline__events', 'source': 'hotline', 'table': 'events', 'raw': ['raw_hotline', 'events']},
        {'model': 'stg_survey__visits', 'source': 'survey', 'table': 'visits', 'raw': ['raw_survey', 'visits']},
        {'model': 'stg_zhujian__tickets', 'source': 'zhujian', 'table': 'gd_main', 'raw': ['raw_zhujian', 'gd_main']},
        {'model': 'stg_chengguan__tickets', 'source': 'chengguan', 'table': 'tickets',
         'raw': ['raw_chengguan', 'tickets']},
        {'model': 'stg_gongdian__tickets', 'source': 'gongdian', 'table': 'tickets', 'raw': ['raw_gongdian', 'tickets']},
    ]) }}
{% endmacro %}

{% macro reference_seeds() %}
    {{ return([
        'map_app311_services', 'map_chengguan_statuses', 'map_gongdian_fault_types', 'map_gongdian_states',
        'map_survey_resolution', 'map_survey_satisfaction', 'map_zhujian_actions', 'map_zhujian_categories',
        'map_zhujian_roles', 'map_zhujian_statuses', 'ref_calendar', 'ref_categories', 'ref_channels',
        'ref_communities', 'ref_demand_types', 'ref_departments', 'ref_districts', 'ref_event_types',
        'ref_streets', 'ref_time_limits',
    ]) }}
{% endmacro %}

{% macro staged_loads() -%}
    {#- read from the raw tables (a column scan): a staged record's load_id is its raw row's -#}
    {%- for record in order_records() %}
    select '{{ record.model }}' as staged_model, cast(_dlt_load_id as decimal(20, 7)) as load_id
    from {{ source(record.raw[0], record.raw[1]) }} group by 2
    {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
{%- endmacro %}

{% macro order_sources_dependencies() -%}
    {%- for record in order_records() %} {{ source(record.raw[0], record.raw[1]) }}{% endfor %}
    {{- ' ' ~ source('quality', 'quarantine') }}
    {%- for seed in reference_seeds() %} {{ ref(seed) }}{% endfor %}
{%- endmacro %}

{% macro sql_literals(values) -%}
    {%- for value in values %}'{{ value | replace("'", "''") }}'{% if not loop.last %}, {% endif %}{% endfor %}
{%- endmacro %}

{% macro quarantine_verdicts() -%}
    select distinct source, table_name, record_key, action, coalesce(column_name, '') as column_name
    from {{ source('quality', 'quarantine') }}
    where action in ('exclude', 'withhold')
      and ({% for record in order_records() -%}
           (source = '{{ record.source }}' and table_name = '{{ record.table }}')
           {%- if not loop.last %} or {% endif %}{% endfor %})
{%- endmacro %}

{% macro reference_fingerprint() -%}
    (select md5(string_agg(seed_name || '=' || content_md5, ',' order by seed_name)) from (
    {%- for seed in reference_seeds() %}
        select '{{ seed }}' as seed_name,
               md5(coalesce(string_agg(cast(seed_rows as varchar), '|' order by cast(seed_rows as varchar)), ''))
                   as content_md5
        from {{ ref(seed) }} as seed_rows
        {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
    ) as seed_fingerprints)
{%- endmacro %}

{% macro touched_orders(column='order_no') -%}
    {{ column }} in (select order_no from {{ ref('int_touched_orders') }})
{%- endmacro %}

{% macro get_incremental_replace_touched_orders_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set batch = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }}
    where order_no in (select order_no from {{ ref('int_touched_orders') }})
    {%- if unique_key %}
       or {{ unique_key }} in (select {{ unique_key }} from {{ batch }})
    {%- endif %};

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ batch }}
{% endmacro %}
