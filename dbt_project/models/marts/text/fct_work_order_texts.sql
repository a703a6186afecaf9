{{ config(materialized='incremental', unique_key='order_no', incremental_strategy='replace_touched_orders',
          on_schema_change='fail') }}
-- depends_on: {{ ref('int_touched_orders') }}
-- depends_on: {{ ref('int_touched_log') }}
-- 工单文本: the free text of every work order in the facts, for text analytics (segmentation,
-- keywords, classification, hot topics, repeat demands). Grain: order_no, one row per row of
-- fct_work_orders. Incremental: a run replaces the rows of the orders touched since the previous
-- build (int_touched_orders), as fct_work_orders does; its other rebuilt rows (orders still open)
-- change only in columns this table does not carry. A full refresh gives the same table. The text is the hotline's title and content as scrubbed at the ingestion
-- boundary (names, phones and ID numbers masked); text_hash lets the text assets segment only
-- new or changed texts (md5 of the length-prefixed title and the content: portable SQL).
select
    facts.order_no,
    facts.received_at,
    facts.received_date,
    facts.demand_type_code,
    facts.category_code,
    categories.category_l2_code,
    categories.category_l1_code,
    facts.district_code,
    facts.street_code,
    facts.community_code,
    unified.title,
    unified.content,
    md5(cast(length(coalesce(unified.title, '')) as varchar) || ':' || coalesce(unified.title, '')
        || coalesce(unified.content, '')) as text_hash
from {{ ref('fct_work_orders') }} as facts
join {{ ref('int_work_orders_unified') }} as unified on unified.order_no = facts.order_no
left join {{ ref('dim_category') }} as categories on categories.category_code = facts.category_code
{% if is_incremental() %}
where {{ touched_orders('facts.order_no') }}
{% endif %}
