"""The official working-day calendar (法定节假日 and 调休 adjusted working days) as data.

Working days come from the maintained `chinese-calendar` package (the State Council's yearly
arrangements); for years it does not know yet (arrangements are published each November) the
calendar falls back to Monday–Friday and marks those dates `is_official = false`.

`write_calendar_seed()` writes dbt_project/seeds/calendar/ref_calendar.csv, from which dbt builds
`dim_date`. Each date carries `workday_index`, the number of working days up to and including it,
so working-day arithmetic in SQL is a join on an integer (the N-th working day after a date d is
the working date whose index is index(d) + N).
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar

HOLIDAY_NAMES_ZH = {"New Year's Day": "元旦", "Spring Festival": "春节", "Tomb-sweeping Day": "清明节",
                    "Labour Day": "劳动节", "Dragon Boat Festival": "端午节", "Mid-autumn Festival": "中秋节",
                    "National Day": "国庆节", "Anti-Fascist 70th Day": "抗战胜利纪念日"}
FIRST_YEAR = 2024
LAST_YEAR = 2028


def day_info(day: date) -> tuple[bool, bool, str | None, bool]:
    """(is_workday, is_official, holiday_name, is_adjusted_workday)."""
    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
        workday = chinese_calendar.is_workday(day)
        holiday = HOLIDAY_NAMES_ZH.get(name, name) if on_holiday and name else None
        return workday, True, holiday, workday and day.weekday() >= 5
    except NotImplementedError:
        return day.weekday() < 5, False, None, False


def calendar_rows(first_year: int = FIRST_YEAR, last_year: int = LAST_YEAR) -> list[dict]:
    rows, index = [], 0
    day = date(first_year, 1, 1)
    while day.year <= last_year:
        workday, official, holiday, adjusted = day_info(day)
        index += workday
        rows.append({
            "date_day": day.isoformat(), "year": day.year, "month": day.month, "day_of_month": day.day,
            "iso_weekday": day.isoweekday(), "is_workday": workday, "is_holiday": holiday is not None,
            "holiday_name": holiday or "", "is_adjusted_workday": adjusted, "is_official": official,
            "workday_index": index,
        })
        day += timedelta(days=1)
    return rows


def write_calendar_seed(folder: Path) -> Path:
    path = Path(folder) / "ref_calendar.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = calendar_rows()
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in row.items()} for row in rows)
    return path
