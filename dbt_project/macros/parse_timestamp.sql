{# Parse a text timestamp in a given format into a timestamp without time zone (Asia/Shanghai
   wall-clock time). Unparseable text gives NULL; staging flags such rows. #}
{% macro parse_timestamp(column, format) -%}
    {{ return(adapter.dispatch('parse_timestamp', 'citizen_voice')(column, format)) }}
{%- endmacro %}

{% macro duckdb__parse_timestamp(column, format) -%}
    try_strptime({{ column }}, '{{ format }}')
{%- endmacro %}

{% macro postgres__parse_timestamp(column, format) -%}
    {# PostgreSQL has no non-failing parse; the formats are translated for to_timestamp. #}
    case when {{ column }} ~ '^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}'
         then to_timestamp(substr({{ column }}, 1, 19), 'YYYY-MM-DD"T"HH24:MI:SS')::timestamp end
{%- endmacro %}

{# An ISO-8601 text with offset (e.g. +08:00), converted to Asia/Shanghai wall-clock time. #}
{% macro iso_to_shanghai(column) -%}
    {{ return(adapter.dispatch('iso_to_shanghai', 'citizen_voice')(column)) }}
{%- endmacro %}

{% macro duckdb__iso_to_shanghai(column) -%}
    (try_cast({{ column }} as timestamptz) at time zone 'Asia/Shanghai')
{%- endmacro %}

{% macro postgres__iso_to_shanghai(column) -%}
    case when {{ column }} ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d'
         then ({{ column }}::timestamptz at time zone 'Asia/Shanghai') end
{%- endmacro %}
