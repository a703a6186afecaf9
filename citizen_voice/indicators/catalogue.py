"""The indicator catalogue (指标口径): versioned definitions in YAML, validated with pydantic.

A definition is built from a small vocabulary of conditions over `marts.fct_work_orders` columns
(never free SQL), so every definition can be rendered to SQL, explained in words and traced back
to the work orders behind it. See README.md in this package for the format.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CATALOGUE = PACKAGE_DIR / "definitions.yaml"

# Columns a condition may name: marts.fct_work_orders' contract, plus `is_repeat` from the text
# helper's contract table text.repeat_demands (false when an order has no row there).
COLUMN_TYPES: dict[str, str] = {
    "order_no": "text", "channel_code": "text", "demand_type_code": "text", "urgency": "text",
    "category_code": "text", "district_code": "text", "street_code": "text", "community_code": "text",
    "lead_dept_code": "text", "intake_source": "text", "status": "text", "is_direct_answer": "bool",
    "is_dispatched": "bool", "received_at": "timestamp", "received_date": "date", "dispatched_at": "timestamp",
    "signed_at": "timestamp", "sign_due_at": "timestamp", "base_due_at": "timestamp", "due_at": "timestamp",
    "time_limit_working_days": "number", "first_closed_at": "timestamp", "closed_at": "timestamp",
    "visited_at": "timestamp", "is_closed": "bool", "is_signed_on_time": "bool", "is_closed_on_time": "bool",
    "is_overdue": "bool", "handling_working_days": "number", "is_returned": "bool", "is_reassigned": "bool",
    "is_extended": "bool", "is_supervised": "bool", "is_redone": "bool", "is_merged": "bool",
    "parent_order_no": "text", "resolution": "text", "satisfaction": "text", "is_confidential": "bool",
    "is_repeat": "bool",
}
# Code lists a condition's values are checked against (the marts' accepted values).
KNOWN_VALUES: dict[str, set[str]] = {
    "demand_type_code": {"ZX", "QZ", "TS", "JB", "JY", "BY", "WX"},
    "status": {"accepted", "handling", "closed", "visited"},
    "resolution": {"解决", "部分解决", "未解决"},
    "satisfaction": {"满意", "基本满意", "不满意", "未评价"},
    "urgency": {"一般", "紧急", "特急"},
}
PERIOD_COLUMNS = ("received_at", "dispatched_at", "due_at", "first_closed_at", "closed_at", "visited_at")


class CatalogueError(ValueError):
    """A catalogue or scoring file that does not validate; the message names file, entry and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """One test on one column. Exactly one operator: is, in, not_in, is_null, passed.

    `passed: true` means the timestamp lies at or before the observation time (the newest
    close or intake in the facts), e.g. a due time that has passed."""

    column: str
    is_: bool | None = Field(None, alias="is")
    in_: list[str] | None = Field(None, alias="in")
    not_in: list[str] | None = None
    is_null: bool | None = None
    passed: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        if self.column not in COLUMN_TYPES:
            raise ValueError(f"unknown column {self.column!r} (known: {', '.join(sorted(COLUMN_TYPES))})")
        given = [name for name in ("is_", "in_", "not_in", "is_null", "passed") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a condition needs exactly one operator of is, in, not_in, is_null, passed")
        kind = COLUMN_TYPES[self.column]
        if self.is_ is not None and kind != "bool":
            raise ValueError(f"'is' needs a boolean column; {self.column} is {kind}")
        if self.passed is not None and kind != "timestamp":
            raise ValueError(f"'passed' needs a timestamp column; {self.column} is {kind}")
        values = self.in_ if self.in_ is not None else self.not_in
        if values is not None:
            if kind != "text":
                raise ValueError(f"'in'/'not_in' need a text column; {self.column} is {kind}")
            if not values:
                raise ValueError("'in'/'not_in' need at least one value")
            unknown = set(values) - KNOWN_VALUES.get(self.column, set(values))
            if unknown:
                raise ValueError(f"unknown {self.column} values {sorted(unknown)} "
                                 f"(known: {sorted(KNOWN_VALUES[self.column])})")
        return self

    def sql(self) -> str:
        column = f'"{self.column}"'
        if self.is_ is not None:
            return f"coalesce({column}, false) = {str(self.is_).lower()}"
        if self.is_null is not None:
            return f"{column} is {'' if self.is_null else 'not '}null"
        if self.passed is not None:
            return f"{column} is not null and {column} {'<=' if self.passed else '>'} observed_at"
        values = ", ".join(_literal(v) for v in (self.in_ if self.in_ is not None else self.not_in))
        if self.in_ is not None:
            return f"{column} in ({values})"
        return f"({column} is null or {column} not in ({values}))"

    def text(self) -> str:
        if self.is_ is not None:
            return f"{self.column} is {str(self.is_).lower()}"
        if self.is_null is not None:
            return f"{self.column} is {'' if self.is_null else 'not '}null"
        if self.passed is not None:
            return f"{self.column} {'has' if self.passed else 'has not'} passed"
        if self.in_ is not None:
            return f"{self.column} in {self.in_}"
        return f"{self.column} not in {self.not_in}"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Weights(_Strict):
    """Weighted numerator: an order in the numerator counts `values[column value]` (e.g. 部分解决 0.5);
    values not listed count 0."""

    column: str
    values: dict[str, float]

    @model_validator(mode="after")
    def _known(self) -> Weights:
        if COLUMN_TYPES.get(self.column) != "text":
            raise ValueError(f"weights need a text column; got {self.column!r}")
        unknown = set(self.values) - KNOWN_VALUES.get(self.column, set(self.values))
        if unknown:
            raise ValueError(f"unknown {self.column} values {sorted(unknown)}")
        if any(w < 0 or w > 1 for w in self.values.values()):
            raise ValueError("weights lie between 0 and 1")
        return self

    def sql(self) -> str:
        cases = " ".join(f"when {_literal(k)} then {float(v)!r}" for k, v in self.values.items())
        return f'(case "{self.column}" {cases} else 0.0 end)'


class Numerator(_Strict):
    where: list[Condition] = Field(default_factory=list)
    weights: Weights | None = None


class Indicator(_Strict):
    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
    name: str
    version: Annotated[int, Field(ge=1)]
    effective_from: date
    description: str = ""
    kind: Literal["count", "daily_average", "ratio", "mean"]
    period_by: str = "received_at"
    exclude: list[str] = Field(default_factory=list)
    population: list[Condition] = Field(default_factory=list)
    numerator: Numerator | None = None
    measure: str | None = None
    unit: Literal["件", "件/日", "%", "工作日"]
    direction: Literal["higher_better", "lower_better", "neutral"]

    @model_validator(mode="after")
    def _shape(self) -> Indicator:
        if self.period_by not in PERIOD_COLUMNS:
            raise ValueError(f"period_by must be one of {', '.join(PERIOD_COLUMNS)}")
        if self.kind == "ratio" and self.numerator is None:
            raise ValueError("a ratio needs a numerator")
        if self.kind != "ratio" and self.numerator is not None:
            raise ValueError(f"a {self.kind} has no numerator (its population is what it counts)")
        if self.kind == "mean":
            if self.measure is None or COLUMN_TYPES.get(self.measure) != "number":
                raise ValueError("a mean needs a numeric `measure` column")
        elif self.measure is not None:
            raise ValueError("only a mean has a measure")
        return self


class Exclusion(_Strict):
    name: str
    when: list[Condition]


class Catalogue(_Strict):
    catalogue: str
    exclusions: dict[str, Exclusion] = Field(default_factory=dict)
    indicators: list[Indicator]

    @field_validator("indicators")
    @classmethod
    def _not_empty(cls, value: list[Indicator]) -> list[Indicator]:
        if not value:
            raise ValueError("the catalogue defines no indicators")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        seen: dict[str, list[Indicator]] = {}
        for indicator in self.indicators:
            unknown = [e for e in indicator.exclude if e not in self.exclusions]
            if unknown:
                raise ValueError(f"indicator {indicator.key!r} v{indicator.version}: unknown exclusions {unknown} "
                                 f"(defined: {', '.join(self.exclusions) or 'none'})")
            seen.setdefault(indicator.key, []).append(indicator)
        for key, versions in seen.items():
            numbers = [v.version for v in versions]
            if len(set(numbers)) != len(numbers):
                raise ValueError(f"indicator {key!r}: version numbers repeat ({numbers})")
            ordered = sorted(versions, key=lambda v: v.version)
            dates = [v.effective_from for v in ordered]
            if dates != sorted(dates) or len(set(dates)) != len(dates):
                raise ValueError(f"indicator {key!r}: a later version must take effect strictly later")
        return self

    def keys(self) -> list[str]:
        """Indicator keys in catalogue order (first appearance)."""
        return list(dict.fromkeys(i.key for i in self.indicators))

    def effective(self, day: date) -> list[Indicator]:
        """The version of each indicator in force on `day` (indicators not yet in force are left out)."""
        chosen: dict[str, Indicator] = {}
        for indicator in self.indicators:
            if indicator.effective_from <= day:
                current = chosen.get(indicator.key)
                if current is None or indicator.version > current.version:
                    chosen[indicator.key] = indicator
        return [chosen[k] for k in self.keys() if k in chosen]

    def definition(self, key: str, day: date) -> Indicator:
        for indicator in self.effective(day):
            if indicator.key == key:
                return indicator
        if key not in self.keys():
            raise KeyError(f"unknown indicator {key!r} (known: {', '.join(self.keys())})")
        raise KeyError(f"indicator {key!r} has no version in force on {day}")

    def exclusion_sql(self, indicator: Indicator) -> list[str]:
        return [f"not ({' and '.join(c.sql() for c in self.exclusions[name].when)})" for name in indicator.exclude]

    def fingerprint(self, day: date, engine_version: int) -> str:
        """Hash of what computing a period starting on `day` depends on: the definitions in force and
        the exclusions they use."""
        used = self.effective(day)
        payload = {
            "engine": engine_version,
            "indicators": [i.model_dump(mode="json", by_alias=True) for i in used],
            "exclusions": {n: self.exclusions[n].model_dump(mode="json", by_alias=True)
                           for n in sorted({e for i in used for e in i.exclude})},
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def describe_errors(exc: ValidationError, raw: dict, path: Path, list_name: str, name_field: str) -> str:
    """One line per error: file, entry (by its key or name) and field."""
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        where = str(path)
        if len(loc) >= 2 and loc[0] == list_name and isinstance(loc[1], int):
            entries = raw.get(list_name) or []
            entry = entries[loc[1]] if loc[1] < len(entries) and isinstance(entries[loc[1]], dict) else {}
            where += f": {list_name}[{loc[1]}] ({name_field}: {entry.get(name_field, '?')}"
            where += f", version {entry['version']})" if "version" in entry else ")"
            loc = loc[2:]
        field = ".".join(str(part) for part in loc)
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {field or '(entry)'}: {message}")
    return "\n".join(lines)


def read_yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CatalogueError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise CatalogueError(f"{path}: expected a mapping at the top level")
    return raw


def load_catalogue(path: Path | str | None = None) -> Catalogue:
    path = Path(path or DEFAULT_CATALOGUE)
    raw = read_yaml(path)
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError(describe_errors(exc, raw, path, "indicators", "key")) from exc
