{# The data-quality quarantine (citizen_voice.quality.quarantine writes it; see expectations/).
   create_quality_quarantine() runs as an on-run-start hook, so the intermediate models can read the
   table on any engine even before the quality step ever ran (then it is empty).

   not_quarantined(system, table, record_key)   true unless the record failed a critical expectation
                                                 whose action is `exclude`
   withheld(system, table, record_key, column)   true when the record's value of `column` failed a
                                                 critical expectation whose action is `withhold` #}

{% macro create_quality_quarantine() %}
    create table if not exists quality.quarantine (
        source varchar(64), table_name varchar(128), record_key varchar(512), record_id varchar(256),
        order_no varchar(64), record_day date, expectation varchar(256), severity varchar(16),
        dimension varchar(32), action varchar(16), column_name varchar(128), raw_value varchar(4000),
        detected_by varchar(32), load_id varchar(64), quarantined_at timestamp
    )
{% endmacro %}

{% macro not_quarantined(system, table, record_key) -%}
    not exists (
        select 1 from {{ source('quality', 'quarantine') }} as quarantined
        where quarantined.source = '{{ system }}' and quarantined.table_name = '{{ table }}'
          and quarantined.record_key = {{ record_key }} and quarantined.action = 'exclude'
    )
{%- endmacro %}

{% macro withheld(system, table, record_key, column) -%}
    exists (
        select 1 from {{ source('quality', 'quarantine') }} as quarantined
        where quarantined.source = '{{ system }}' and quarantined.table_name = '{{ table }}'
          and quarantined.record_key = {{ record_key }} and quarantined.action = 'withhold'
          and quarantined.column_name = '{{ column }}'
    )
{%- endmacro %}
