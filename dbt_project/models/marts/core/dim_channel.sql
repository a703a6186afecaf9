-- 受理渠道维度.
select channel_code, channel_name from {{ ref('ref_channels') }}
