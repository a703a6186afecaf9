"""Working-day arithmetic on the official Chinese calendar (holidays and adjusted working days).

Rules used by the sandbox city (the warehouse implements the same documented rules):
- a time limit of N working days runs from the dispatch time and ends at 23:59:59 on the N-th
  working day after the dispatch day (the dispatch day itself does not count);
- departments act during working hours, 09:00-17:00 on working days.
"""

from __future__ import annotations

import bisect
from datetime import date, datetime, time, timedelta

import chinese_calendar

WORK_START = time(9, 0)
WORK_END = time(17, 0)
WORK_SECONDS_PER_DAY = 8 * 3600


def is_official_workday(day: date) -> bool:
    """Working day per the State Council's holiday arrangements; beyond the years the calendar
    library knows (arrangements are published each November), Monday to Friday."""
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        return day.weekday() < 5


class WorkCalendar:
    def __init__(self, first: date, last: date):
        self.first = first
        self.last = last
        self._workdays: list[date] = []
        day = first
        while day <= last:
            if is_official_workday(day):
                self._workdays.append(day)
            day += timedelta(days=1)
        self._workday_set = set(self._workdays)

    def is_workday(self, day: date) -> bool:
        return day in self._workday_set

    def nth_workday_after(self, day: date, n: int) -> date:
        """The n-th working day strictly after `day` (n >= 1); the calendar grows as needed."""
        idx = bisect.bisect_right(self._workdays, day)
        while idx + n - 1 >= len(self._workdays):
            self._extend(self.last + timedelta(days=366))
        return self._workdays[idx + n - 1]

    def _extend(self, new_last: date) -> None:
        day = self.last + timedelta(days=1)
        while day <= new_last:
            if is_official_workday(day):
                self._workdays.append(day)
                self._workday_set.add(day)
            day += timedelta(days=1)
        self.last = new_last

    def deadline(self, start: datetime, working_days: int) -> datetime:
        return datetime.combine(self.nth_workday_after(start.date(), working_days), time(23, 59, 59))

    def next_working_moment(self, moment: datetime) -> datetime:
        """`moment` itself if it falls inside working hours, else the start of the next ones."""
        day = moment.date()
        if self.is_workday(day):
            if moment.time() < WORK_START:
                return datetime.combine(day, WORK_START)
            if moment.time() < WORK_END:
                return moment
        return datetime.combine(self.nth_workday_after(day, 1), WORK_START)

    def add_working_seconds(self, moment: datetime, seconds: float) -> datetime:
        moment = self.next_working_moment(moment)
        remaining = seconds
        while True:
            end_of_day = datetime.combine(moment.date(), WORK_END)
            available = (end_of_day - moment).total_seconds()
            if remaining < available:
                return moment + timedelta(seconds=remaining)
            remaining -= available
            moment = datetime.combine(self.nth_workday_after(moment.date(), 1), WORK_START)

    def add_working_days(self, moment: datetime, days: float) -> datetime:
        return self.add_working_seconds(moment, days * WORK_SECONDS_PER_DAY)

    def working_days_between(self, start: datetime, end: datetime) -> float:
        """Working time between two moments, in working days of 8 working hours."""
        if end <= start:
            return 0.0
        seconds = 0.0
        moment = self.next_working_moment(start)
        while moment < end:
            end_of_day = datetime.combine(moment.date(), WORK_END)
            seconds += (min(end, end_of_day) - moment).total_seconds()
            moment = datetime.combine(self.nth_workday_after(moment.date(), 1), WORK_START)
        return seconds / WORK_SECONDS_PER_DAY
