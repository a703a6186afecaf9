"""Reporting periods: months ('2026-10') and days ('2026-10-08')."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

PERIOD_TYPES = ("month", "day")


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True, order=True)
class Period:
    type: str
    start: date

    def __post_init__(self):
        if self.type not in PERIOD_TYPES:
            raise ValueError(f"unknown period type {self.type!r} (known: {', '.join(PERIOD_TYPES)})")
        if self.type == "month" and self.start.day != 1:
            raise ValueError(f"a month starts on its first day, not {self.start}")

    @classmethod
    def parse(cls, text: str, period_type: str | None = None) -> Period:
        """'2026-10' is a month; '2026-10-08' a day, or the month starting then when period_type is
        'month' (Dagster's monthly partition keys look like '2026-10-01')."""
        text = text.strip()
        try:
            if len(text) == 7:
                parsed = cls("month", date.fromisoformat(text + "-01"))
            else:
                day = date.fromisoformat(text)
                parsed = cls("month", day) if period_type == "month" else cls("day", day)
        except ValueError as exc:
            raise ValueError(f"not a period: {text!r} (use YYYY-MM for a month, YYYY-MM-DD for a day): {exc}") from exc
        if period_type is not None and parsed.type != period_type:
            raise ValueError(f"{text!r} is a {parsed.type}, not a {period_type}")
        return parsed

    @property
    def label(self) -> str:
        return self.start.strftime("%Y-%m") if self.type == "month" else self.start.isoformat()

    @property
    def end(self) -> date:
        """The first day after the period."""
        return _add_months(self.start, 1) if self.type == "month" else self.start + timedelta(days=1)

    @property
    def previous(self) -> Period:
        return Period(self.type, _add_months(self.start, -1) if self.type == "month"
                      else self.start - timedelta(days=1))

    @property
    def next(self) -> Period:
        return Period(self.type, self.end)

    @property
    def last_year(self) -> Period:
        """The same period a year earlier (29 February maps to 28 February)."""
        if self.type == "month":
            return Period("month", _add_months(self.start, -12))
        try:
            return Period("day", self.start.replace(year=self.start.year - 1))
        except ValueError:
            return Period("day", self.start.replace(year=self.start.year - 1, day=28))

    @property
    def next_year(self) -> Period:
        if self.type == "month":
            return Period("month", _add_months(self.start, 12))
        try:
            return Period("day", self.start.replace(year=self.start.year + 1))
        except ValueError:
            return Period("day", self.start.replace(year=self.start.year + 1, day=28))

    def __str__(self) -> str:
        return self.label
