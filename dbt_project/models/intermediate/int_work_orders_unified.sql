-- One record per work order across systems. Precedence (documented in the YAML): intake fields
-- from the central hotline; the close time from the hotline, else from the lead department's own
-- system when that close is newer than the hotline's last update (a department may report closing
-- before the hotline records it; an older department close was superseded, e.g. by 重办).
with hotline as (
    select * from {{ ref('stg_hotline__orders') }}
),

zhujian_lead as (
    select order_no, closed_at
    from {{ ref('stg_zhujian__tickets') }}
    where role = 'lead' and order_no is not null
    qualify row_number() over (partition by order_no order by updated_at desc nulls last, ticket_id) = 1
),

districts as (select district_code from {{ ref('ref_districts') }}),
categories as (select category_code from {{ ref('ref_categories') }}),

checked as (
    select
        hotline.*,
        case
            when hotline.received_at is null then 'received_at is not a valid time: ' || coalesce(hotline.received_at_text, 'NULL')
            when hotline.received_at > hotline.updated_at then 'received_at after the record''s last update'
            when districts.district_code is null then 'unknown district_code ' || coalesce(hotline.district_code, 'NULL')
            when categories.category_code is null then 'unknown category_code ' || coalesce(hotline.category_code, 'NULL')
        end as rejection_reason
    from hotline
    left join districts on districts.district_code = hotline.district_code
    left join categories on categories.category_code = hotline.category_code
)

select
    checked.order_no,
    checked.channel_code,
    checked.demand_type_code,
    checked.urgency,
    checked.category_code,
    checked.district_code,
    checked.street_code,
    checked.community_code,
    checked.title,
    checked.content,
    checked.status,
    checked.lead_dept_code,
    checked.is_direct_answer,
    checked.parent_order_no,
    checked.received_at,
    checked.due_at,
    case
        when checked.closed_at is not null then checked.closed_at
        when zhujian_lead.closed_at > checked.updated_at then zhujian_lead.closed_at
    end as closed_at,
    checked.updated_at,
    checked.rejection_reason
from checked
left join zhujian_lead on zhujian_lead.order_no = checked.order_no
