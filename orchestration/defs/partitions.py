"""The platform's partitions, shared by every domain: days and months in Asia/Shanghai."""

import dagster as dg

TIMEZONE = "Asia/Shanghai"
# The first day a backfill may ask for; a hotline's history before this is out of the platform's scope.
HISTORY_START = "2025-01-01"

# No end offset: the daily schedule at 06:00 runs the day just finished, the monthly one on the 1st the
# month just finished.
DAILY = dg.DailyPartitionsDefinition(start_date=HISTORY_START, timezone=TIMEZONE)
MONTHLY = dg.MonthlyPartitionsDefinition(start_date=HISTORY_START, timezone=TIMEZONE)
# Weeks start on Monday (the weekly brief covers Monday to Sunday, published Monday morning).
WEEKLY = dg.WeeklyPartitionsDefinition(start_date="2025-01-06", timezone=TIMEZONE, day_offset=1)
