"""publish.yaml, validated with pydantic: errors name the file and the field."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG = Path(__file__).with_name("publish.yaml")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_TABLE = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
# Source aliases of the open dataset's query (see open_data.OPEN_SOURCE_SQL).
OPEN_ALIASES = ("o", "cat", "dist", "st", "com", "dept", "ch")
# Columns that identify or link callers: never in the open dataset, whatever the configuration says.
NEVER_PUBLIC = frozenset({"caller_key", "caller_phone_masked", "caller_name", "caller_phone", "caller_id_no",
                          "parent_order_no", "source_load_id", "is_confidential"})


class PublishConfigError(ValueError):
    """publish.yaml is missing, not YAML, or fails validation."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SharedTable(_Strict):
    name: str  # file name stem under shares/<department>/ and the view name in PostgreSQL
    table: str  # schema.table in the warehouse
    department_column: str
    key: Literal["department_code", "district_code"] = "department_code"
    assisting: bool = False
    exclude_columns: tuple[str, ...] = ()
    # a SQL condition on the table's own columns, valid in DuckDB and PostgreSQL (e.g. grain = 'department')
    row_filter: str | None = None
    optional: bool = False
    # a timestamp/date column: the table is written in month parts (<name>/month=YYYY-MM/part.*),
    # rewritten only when their rows change; without one, a whole <name>.parquet|.csv
    month_column: str | None = None

    @field_validator("name", "department_column", "month_column")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not _IDENTIFIER.match(value):
            raise ValueError(f"{value!r} is not a lower-case identifier")
        return value

    @field_validator("table")
    @classmethod
    def _qualified(cls, value: str) -> str:
        if not _TABLE.match(value):
            raise ValueError(f"{value!r} must be schema.table (lower case)")
        return value

    @field_validator("row_filter")
    @classmethod
    def _single_condition(cls, value: str | None) -> str | None:
        if value is not None and (";" in value or "--" in value or not value.strip()):
            raise ValueError("row_filter must be one SQL condition (no ';' or comments)")
        return value

    @model_validator(mode="after")
    def _department_column_kept(self) -> SharedTable:
        for attribute in ("department_column", "month_column"):
            if getattr(self, attribute) in self.exclude_columns:
                raise ValueError(f"{attribute} {getattr(self, attribute)!r} cannot be excluded")
        return self

    @property
    def schema_name(self) -> str:
        return self.table.split(".")[0]

    @property
    def table_name(self) -> str:
        return self.table.split(".")[1]


class DepartmentShares(_Strict):
    tables: tuple[SharedTable, ...] = Field(min_length=1)

    @field_validator("tables")
    @classmethod
    def _unique(cls, tables: tuple[SharedTable, ...]) -> tuple[SharedTable, ...]:
        for attribute in ("name", "table"):
            values = [getattr(t, attribute) for t in tables]
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                raise ValueError(f"duplicate {attribute}: {duplicates}")
        return tables


class Aggregate(_Strict):
    name: str
    group_by: tuple[str, ...] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"{value!r} is not a lower-case identifier")
        return value


class OpenData(_Strict):
    suppression_threshold: int = Field(ge=1)
    exclude_confidential: bool = True
    timestamp_precision: Literal["minute", "hour", "day"] = "hour"
    community_cell_by: tuple[str, ...] = ()  # published columns that also split a community's monthly cell
    columns: dict[str, str] = Field(min_length=1)
    aggregates: tuple[Aggregate, ...] = ()

    @field_validator("columns")
    @classmethod
    def _sources(cls, columns: dict[str, str]) -> dict[str, str]:
        for name, source in columns.items():
            if not _IDENTIFIER.match(name):
                raise ValueError(f"column {name!r} is not a lower-case identifier")
            alias, _, column = source.partition(".")
            if alias not in OPEN_ALIASES or not _IDENTIFIER.match(column):
                raise ValueError(f"column {name}: source {source!r} must be <alias>.<column> with alias one of "
                                 f"{', '.join(OPEN_ALIASES)}")
            if name in NEVER_PUBLIC or column in NEVER_PUBLIC:
                raise ValueError(f"column {name} ({source}) identifies or links callers and is never published")
        for required in ("order_no", "received_at", "category_code", "status", "is_closed"):
            if required not in columns:  # the Open311 API and the aggregates need them
                raise ValueError(f"column {required!r} is required")
        return columns

    @model_validator(mode="after")
    def _group_by_known(self) -> OpenData:
        known = {*self.columns, "period"}
        unknown = [c for c in self.community_cell_by if c not in self.columns]
        if unknown:
            raise ValueError(f"community_cell_by {unknown} not among the published columns")
        for aggregate in self.aggregates:
            unknown = [c for c in aggregate.group_by if c not in known]
            if unknown:
                raise ValueError(f"aggregate {aggregate.name}: group_by {unknown} not among the published columns")
        return self


class PostgresServing(_Strict):
    url_env: str = "CV_SERVING_PG_URL"
    role_prefix: str = "cv_"
    analyst_role: str = "analyst"
    password_env_prefix: str = "CV_SERVING_PG_PASSWORD_"
    reference_tables: tuple[str, ...] = ("marts.dim_*",)  # readable by every department (fnmatch patterns)

    @field_validator("role_prefix", "analyst_role")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"{value!r} is not a lower-case identifier")
        return value


class Serving(_Strict):
    schemas: tuple[str, ...] = Field(min_length=1)
    snapshot_file: str = "serving/warehouse.duckdb"
    postgres: PostgresServing = PostgresServing()


class Dictionary(_Strict):
    names: dict[str, str] = {}
    descriptions: dict[str, str] = {}


class PublishConfig(_Strict):
    version: int
    department_shares: DepartmentShares
    open_data: OpenData
    serving: Serving
    dictionary: Dictionary = Dictionary()


def load_config(path: str | Path | None = None) -> PublishConfig:
    """Read and validate publish.yaml (default: the one beside this module)."""
    path = Path(path or DEFAULT_CONFIG)
    return _load(path.resolve(), path.stat().st_mtime_ns if path.exists() else 0)


@lru_cache(maxsize=4)
def _load(path: Path, _mtime: int) -> PublishConfig:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise PublishConfigError(f"{path}: not found") from None
    except yaml.YAMLError as exc:
        raise PublishConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return PublishConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise PublishConfigError(f"{path}: {problems}") from None
