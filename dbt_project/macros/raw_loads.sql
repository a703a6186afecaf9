{# Base models (models/staging/<source>/base_*): the raw table's rows trimmed, cast and parsed once,
   stored, so the staging views over them no longer parse every row on every read.

   The raw layer is dlt `merge` on the primary key: a re-delivered record replaces its raw row, with
   the new load's `_dlt_load_id`. A load is new when no base row carries its id. Loads are a set, not
   a sequence: dlt completes a package a crash left pending on the next run, so a load older than the
   newest one stored can still arrive. Nothing deletes raw rows (only merges replace them).

   unseen_raw_loads(raw)     filter on `_dlt_load_id`: the raw rows of loads the base has not seen
                             (everything on a first or full-refresh build)
   Used with incremental_strategy='delete+insert' on the raw primary key: the base rows of every
   record in a new load are deleted and the raw rows of the new loads inserted. #}

{% macro unseen_raw_loads(raw) -%}
    {%- if is_incremental() -%}
        {%- set unseen = run_query(
            "select raw_loads.load_id from (select distinct _dlt_load_id as load_id from " ~ raw ~ ") as raw_loads "
            ~ "left join (select distinct load_id from " ~ this ~ ") as base_loads "
            ~ "on base_loads.load_id = cast(raw_loads.load_id as decimal(20, 7)) "
            ~ "where base_loads.load_id is null") -%}
        {%- set load_ids = unseen.columns[0].values() -%}
        {%- if load_ids | length -%}
            _dlt_load_id in ({{ sql_literals(load_ids) }})
        {%- else -%}
            1 = 0
        {%- endif -%}
    {%- else -%}
        1 = 1
    {%- endif -%}
{%- endmacro %}
