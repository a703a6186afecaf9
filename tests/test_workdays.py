"""The working-day calendar seed: in sync with chinese-calendar, and right on known dates."""

import csv

from citizen_voice import settings
from citizen_voice.workdays import calendar_rows


def _seed():
    path = settings.dbt_project_dir() / "seeds" / "calendar" / "ref_calendar.csv"
    with path.open(encoding="utf-8") as handle:
        return {row["date_day"]: row for row in csv.DictReader(handle)}


def test_seed_is_in_sync_with_the_package():
    seed = _seed()
    rows = calendar_rows()
    assert len(seed) == len(rows)
    for row in rows:
        assert seed[row["date_day"]]["workday_index"] == str(row["workday_index"]), row["date_day"]
        assert seed[row["date_day"]]["is_workday"] == str(row["is_workday"]).lower()


def test_known_2026_arrangements():
    seed = _seed()
    assert seed["2026-10-01"]["is_workday"] == "false" and seed["2026-10-01"]["holiday_name"] == "国庆节"
    assert seed["2026-09-20"]["is_workday"] == "true" and seed["2026-09-20"]["is_adjusted_workday"] == "true"
    assert seed["2026-02-17"]["holiday_name"] == "春节"
    # the index counts working days: the 3rd working day after 2026-09-30 (Wed) is Saturday 2026-10-10,
    # an adjusted working day after the National Day holiday (10-08 and 10-09 being the first two)
    target = int(seed["2026-09-30"]["workday_index"]) + 3
    third = min(d for d, r in seed.items() if r["is_workday"] == "true" and int(r["workday_index"]) == target)
    assert third == "2026-10-10"


def test_unknown_years_fall_back_to_weekdays_and_say_so():
    seed = _seed()
    assert seed["2028-05-01"]["is_official"] == "false"
    assert seed["2028-05-01"]["is_workday"] == "true"  # a Monday; no arrangement known yet
