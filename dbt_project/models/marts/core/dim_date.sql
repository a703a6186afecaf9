-- 日期维度 with the official working-day calendar (holidays and 调休 adjusted working days).
select date_day, year, month, day_of_month, iso_weekday, is_workday, is_holiday,
       nullif(holiday_name, '') as holiday_name, is_adjusted_workday, is_official, workday_index
from {{ ref('ref_calendar') }}
