{# Daily file drops carry one snapshot of an order per day it changed: keep the latest per key
   (newest update time, then the later file, then the first line of that file), with how many
   snapshots there were and whether several lines share the winning update time (a conflicting
   duplicate inside one drop). #}
{% macro latest_file_snapshot(relation, key) %}
    select * from (
        select
            {{ relation }}.*,
            row_number() over (
                partition by {{ key }}
                order by updated_at desc nulls last, source_file desc, source_line asc
            ) as snapshot_rank,
            count(*) over (partition by {{ key }}) as snapshot_count,
            count(*) over (partition by {{ key }}, updated_at) as versions_at_update
        from {{ relation }}
    ) as ranked
    where snapshot_rank = 1
{% endmacro %}
