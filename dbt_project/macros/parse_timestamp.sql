{# Timestamps from the department systems, turned into Asia/Shanghai wall-clock time (`timestamp`
   without time zone). Every macro here is non-failing: text that is not a valid time in the
   expected shape gives NULL (staging keeps the text or flags the row; the boundary quarantines
   records whose required times are invalid). Asia/Shanghai has had no daylight-saving time since
   1991, so wall-clock time is UTC + 8 hours for every date the platform handles.

   parse_timestamp(column, format)   local wall-clock text in a strptime format (%Y %m %d %H %M %S;
                                     one- or two-digit fields accepted: '2026/8/1 9:05')
   iso_to_shanghai(column)           ISO-8601 text with an offset ('...+08:00', '...Z')
   utc_iso_to_shanghai(column)       ISO-8601 text in UTC ('...Z'; no offset also read as UTC)
   epoch_to_shanghai(column)         Unix epoch seconds (text or number) #}

{% macro parse_timestamp(column, format) -%}
    {{ return(adapter.dispatch('parse_timestamp', 'citizen_voice')(column, format)) }}
{%- endmacro %}

{% macro default__parse_timestamp(column, format) -%}
    {{ exceptions.raise_compiler_error("parse_timestamp has no implementation for " ~ target.type) }}
{%- endmacro %}

{% macro duckdb__parse_timestamp(column, format) -%}
    {#- year 0 would parse as 1 BC; PostgreSQL (and the Python boundary) reject it -#}
    (case when year(try_strptime(trim({{ column }}), '{{ format }}')) >= 1
          then try_strptime(trim({{ column }}), '{{ format }}') end)
{%- endmacro %}

{% macro postgres__parse_timestamp(column, format) -%}
    {#- PostgreSQL has no non-failing parse and to_timestamp raises on 2026-02-30: the format is
        translated into a regular expression with one group per field, every field is range-checked
        (the day against the month's length) and only then is the timestamp built. -#}
    {%- set ns = namespace(regex='^', fields=[], skip=false) -%}
    {%- for i in range(format | length) -%}
        {%- if ns.skip -%}
            {%- set ns.skip = false -%}
        {%- elif format[i] == '%' -%}
            {%- set directive = format[i + 1] -%}
            {%- if directive not in ['Y', 'm', 'd', 'H', 'M', 'S'] -%}
                {{ exceptions.raise_compiler_error("parse_timestamp (postgres): unsupported directive %" ~ directive ~ " in " ~ format) }}
            {%- endif -%}
            {%- set ns.fields = ns.fields + [directive] -%}
            {%- set ns.regex = ns.regex ~ ('(\\d{4})' if directive == 'Y' else '(\\d{1,2})') -%}
            {%- set ns.skip = true -%}
        {%- elif format[i] in '.^$*+?()[]{}|\\' -%}
            {%- set ns.regex = ns.regex ~ '\\' ~ format[i] -%}
        {%- else -%}
            {%- set ns.regex = ns.regex ~ format[i] -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set regex = ns.regex ~ '$' -%}
    {%- set text = 'btrim(' ~ column ~ ')' -%}
    {%- set part = {} -%}
    {%- for name in ['Y', 'm', 'd', 'H', 'M', 'S'] -%}
        {%- if name in ns.fields -%}
            {%- do part.update({name: '(regexp_match(' ~ text ~ ", '" ~ regex ~ "'))[" ~ (ns.fields.index(name) + 1) ~ ']::int'}) -%}
        {%- elif name in ['Y', 'm', 'd'] -%}
            {{ exceptions.raise_compiler_error("parse_timestamp (postgres): " ~ format ~ " lacks %" ~ name) }}
        {%- else -%}
            {%- do part.update({name: '0'}) -%}
        {%- endif -%}
    {%- endfor -%}
    (case when {{ text }} ~ '{{ regex }}' then
        case when {{ part.Y }} >= 1 and {{ part.m }} between 1 and 12 and {{ part.d }} >= 1
                  and {{ part.H }} < 24 and {{ part.M }} < 60 and {{ part.S }} < 60 then
            case when {{ part.d }} <= extract(day from make_date({{ part.Y }}, {{ part.m }}, 1) + interval '1 month' - interval '1 day')
                 then make_timestamp({{ part.Y }}, {{ part.m }}, {{ part.d }}, {{ part.H }}, {{ part.M }}, {{ part.S }}) end
        end
    end)
{%- endmacro %}


{% macro iso_to_shanghai(column) -%}
    {{ return(adapter.dispatch('iso_to_shanghai', 'citizen_voice')(column)) }}
{%- endmacro %}

{% macro duckdb__iso_to_shanghai(column) -%}
    (try_cast({{ column }} as timestamptz) at time zone 'Asia/Shanghai')
{%- endmacro %}

{% macro postgres__iso_to_shanghai(column) -%}
    (case when {{ column }} ~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)$'
               and {{ postgres__parse_timestamp('translate(substr(' ~ column ~ ", 1, 19), 'T', ' ')", '%Y-%m-%d %H:%M:%S') }} is not null
          then ({{ column }}::timestamptz at time zone 'Asia/Shanghai') end)
{%- endmacro %}


{% macro utc_iso_to_shanghai(column) -%}
    {{ return(adapter.dispatch('utc_iso_to_shanghai', 'citizen_voice')(column)) }}
{%- endmacro %}

{% macro duckdb__utc_iso_to_shanghai(column) -%}
    (try_cast(case when regexp_matches({{ column }}, '\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)$')
                   then {{ column }} else {{ column }} || '+00:00' end as timestamptz) at time zone 'Asia/Shanghai')
{%- endmacro %}

{% macro postgres__utc_iso_to_shanghai(column) -%}
    {%- set with_offset = "(case when " ~ column ~ " ~ '\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?([Zz]|[+-]\\d{2}(:?\\d{2})?)$' then "
                          ~ column ~ " else " ~ column ~ " || 'Z' end)" -%}
    {{ postgres__iso_to_shanghai(with_offset) }}
{%- endmacro %}


{% macro epoch_to_shanghai(column) -%}
    {{ return(adapter.dispatch('epoch_to_shanghai', 'citizen_voice')(column)) }}
{%- endmacro %}

{% macro duckdb__epoch_to_shanghai(column) -%}
    (case when try_cast({{ column }} as double) between -62135596800 and 253402300799
          then to_timestamp(try_cast({{ column }} as double)) at time zone 'Asia/Shanghai' end)
{%- endmacro %}

{% macro postgres__epoch_to_shanghai(column) -%}
    (case when btrim(cast({{ column }} as text)) ~ '^-?\d{1,11}(\.\d+)?$'
          then to_timestamp(btrim(cast({{ column }} as text))::double precision) at time zone 'Asia/Shanghai' end)
{%- endmacro %}
