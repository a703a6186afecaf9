"""The vocabulary of the suites: a named check (one Great Expectations expectation with a stable name,
a severity, the quality dimension it scores and what happens to a failing record) and a suite (the
checks of one table, with the query that reads the table's records as a dataframe).

Suites are built against an open DuckDB connection because value sets (districts, categories, codes)
come from the warehouse's reference seeds, never from code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import great_expectations as gx

from citizen_voice.warehouse import has_table

Severity = Literal["critical", "warning"]
Dimension = Literal["completeness", "validity", "consistency", "timeliness", "schema", "privacy"]
# exclude: the record is kept out of the warehouse; withhold: only the named column's value is kept
# out (the intermediate layer then takes that field from the next system in the precedence order)
Action = Literal["exclude", "withhold"]

RECORD_KEY = "record_key"  # every frame has it: the record's locator (the staging source_record)

# Personal numbers that must never reach shared tables (the same shapes citizen_voice.privacy finds):
# a mainland mobile number and an 18- or 15-digit resident ID, standing alone (not inside a longer
# run of letters and digits such as a keyed pseudonym 'ph_7013836466…' or a work-order number).
PHONE_PATTERN = r"(?<![0-9A-Za-z])(?:\+?86[- ]?)?1[3-9][0-9][- ]?[0-9]{4}[- ]?[0-9]{4}(?![0-9A-Za-z])"
ID_NUMBER_PATTERN = r"(?<![0-9A-Za-z])(?:[1-9][0-9]{16}[0-9Xx]|[1-9][0-9]{14})(?![0-9A-Za-z])"


@dataclass(frozen=True)
class Check:
    name: str  # stable: <suite>.<rule>, e.g. raw_hotline.orders.district_code_known
    expectation: gx.expectations.Expectation
    severity: Severity = "critical"
    dimension: Dimension = "validity"
    action: Action = "exclude"
    column: str | None = None  # the column reported (and withheld, for action=withhold)
    description: str = ""  # Chinese, for the department-facing report
    # a bound that moves with the clock only ever admits more (no record from the future): a record
    # within yesterday's bound is within today's, so a remembered pass stays valid (runner.fingerprint)
    bound_only_widens: bool = False

    def configured(self) -> gx.expectations.Expectation:
        """The expectation carrying this check's name and severity (GX keeps both in its results)."""
        meta = {"name": self.name, "dimension": self.dimension, "action": self.action, "column": self.column,
                "description": self.description}
        fields = self.expectation.dict(exclude_none=True, exclude={"id", "meta", "severity", "rendered_content"})
        return type(self.expectation)(**fields, meta=meta, severity=self.severity)


TOUCHED_SCOPES = "suite_touched"  # the temporary table of touched scope hashes a scoped frame reads


def in_scope(column: str) -> str:
    """A scoped frame's filter: the row's scope value is touched (a hash match: a collision only adds rows)."""
    return f"hash({column}) in (select scope_hash from {TOUCHED_SCOPES})"


@dataclass(frozen=True)
class ScopeInput:
    relation: str  # a table or view the frame reads
    scope: str  # its expression of the scope value (e.g. order_no)
    load: str | None  # its expression of the load that last wrote the row (None: only other inputs say)


@dataclass(frozen=True)
class Scope:
    """How a suite's frame splits into independent parts (expectations.runner validates only touched parts).

    Every frame row's content depends only on rows of `main` and `others` with the same scope value,
    and those rows change only in a load, so a part is touched when a new load wrote one of its input
    rows, or when a record of it moved there from another part. A load may also be a build that lists
    the parts it rewrote (intermediate.int_touched_log, for the facts): an input that keeps only its
    latest loads must still hold one the memory saw, else every part is read. `main` has exactly one
    row per frame row; `frame_sql` is the frame with each input filtered by in_scope (each input is
    filtered before its joins and aggregates: a filter on the whole frame is not pushed down by DuckDB)."""
    column: str  # the frame's scope column
    frame_sql: str
    main: ScopeInput
    key: str  # main's expression of the frame's record_key
    unique: tuple[tuple[str, str], ...] = ()  # per uniqueness rule: (frame column, main's expression)
    others: tuple[ScopeInput, ...] = ()


@dataclass(frozen=True)
class Suite:
    name: str  # e.g. raw_hotline.orders, marts.fct_work_orders
    asset_key: tuple[str, ...]  # the Dagster asset the suite checks
    frame_sql: str  # DuckDB SQL giving the records as a dataframe with a record_key column
    checks: tuple[Check, ...]
    source: str | None = None  # registry source (department system) for raw suites
    table: str | None = None  # registry table name for raw suites
    description: str = ""
    extra_columns: tuple[str, ...] = field(default=())  # kept with failing records (e.g. order_no)
    scope: Scope | None = None  # the frame's independent parts, if it has them (validated part by part)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)


SuiteBuilder = Callable[["ValueSets"], Suite]


class ValueSets:
    """Reference value sets read once from the warehouse's seeds (schema `reference`)."""

    def __init__(self, con):
        self._con = con
        self._cache: dict[str, list] = {}

    def column(self, table: str, column: str) -> list:
        key = f"{table}.{column}"
        if key not in self._cache:
            rows = self._con.execute(f'select distinct "{column}" from reference.{table} '
                                     f'where "{column}" is not null').fetchall()
            self._cache[key] = sorted(str(r[0]) for r in rows)
        return self._cache[key]

    def table_exists(self, schema: str, table: str) -> bool:
        return has_table(self._con, schema, table)

    def columns(self, schema: str, table: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._con.execute(
            "select column_name, data_type from information_schema.columns where table_schema = ? "
            "and table_name = ? order by ordinal_position", [schema, table]).fetchall()]


# Short constructors, so the suites read as a list of rules.
E = gx.expectations


def not_null(column: str) -> gx.expectations.Expectation:
    return E.ExpectColumnValuesToNotBeNull(column=column)


def in_set(column: str, values) -> gx.expectations.Expectation:
    return E.ExpectColumnValuesToBeInSet(column=column, value_set=list(values))


def unique(column: str) -> gx.expectations.Expectation:
    return E.ExpectColumnValuesToBeUnique(column=column)


def at_most(column: str, value) -> gx.expectations.Expectation:
    return E.ExpectColumnValuesToBeBetween(column=column, max_value=value)


def between(column: str, low, high) -> gx.expectations.Expectation:
    return E.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high)


def not_before(later: str, earlier: str) -> gx.expectations.Expectation:
    """later >= earlier on every row where both are known."""
    return E.ExpectColumnPairValuesAToBeGreaterThanB(column_A=later, column_B=earlier, or_equal=True,
                                                     ignore_row_if="either_value_is_missing")


def max_length(column: str, length: int) -> gx.expectations.Expectation:
    return E.ExpectColumnValueLengthsToBeBetween(column=column, max_value=length)


def has_columns(columns) -> gx.expectations.Expectation:
    return E.ExpectTableColumnsToMatchSet(column_set=list(columns), exact_match=False)


def no_personal_numbers(column: str) -> gx.expectations.Expectation:
    return E.ExpectColumnValuesToNotMatchRegexList(column=column, regex_list=[PHONE_PATTERN, ID_NUMBER_PATTERN])
