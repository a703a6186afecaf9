"""The source registry: which department system is where, declared in YAML and validated at load.

Connecting a department = one entry in `ingestion/sources.yaml` (plus its staging model). Errors
name the file, the entry and the field. Credentials are never in the file: entries name the
environment variables that hold them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_REGISTRY = Path(__file__).with_name("sources.yaml")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
PERSONAL_KINDS = ("name", "phone", "id_no")


def expand(value: str) -> str:
    """Expand ${VAR} from the environment; ${CV_SANDBOX} defaults to the platform's sandbox folder."""
    from citizen_voice import settings

    defaults = {"CV_SANDBOX": str(settings.sandbox_dir())}
    return re.sub(r"\$\{(\w+)\}", lambda m: os.environ.get(m.group(1)) or defaults.get(m.group(1), m.group(0)), value)


class RegistryError(ValueError):
    """The registry file is invalid; the message names file, entry and field."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvValue(Strict):
    """A value given directly (for non-secret defaults, e.g. the sandbox) or by environment variable."""

    value: str | None = None
    env: str | None = None

    def resolve(self, what: str) -> str:
        if self.env and os.environ.get(self.env):
            return os.environ[self.env]
        if self.value is not None:
            return expand(self.value)
        raise RegistryError(f"{what}: environment variable {self.env} is not set")


class Auth(Strict):
    type: Literal["none", "bearer", "basic"] = "none"
    token: EnvValue | None = None
    username: EnvValue | None = None
    password: EnvValue | None = None

    @model_validator(mode="after")
    def _complete(self):
        if self.type == "bearer" and self.token is None:
            raise ValueError("bearer auth needs `token` (give `env:` for a real system)")
        if self.type == "basic" and (self.username is None or self.password is None):
            raise ValueError("basic auth needs `username` and `password`")
        return self


class PersonalData(Strict):
    """Where personal data sits in a table: fields by kind, and free-text fields to scrub."""

    fields: dict[str, Literal["name", "phone", "id_no"]] = Field(default_factory=dict)
    text_fields: list[str] = Field(default_factory=list)


class TableSpec(Strict):
    """One table (endpoint, SQL table, file family) of a source."""

    name: str
    primary_key: list[str]
    required: list[str] = Field(default_factory=list)
    # declared types checked at the boundary: integer, number, boolean, timestamp:<strptime format>
    types: dict[str, str] = Field(default_factory=dict)
    personal_data: PersonalData = Field(default_factory=PersonalData)

    @field_validator("primary_key", mode="before")
    @classmethod
    def _listify(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("types")
    @classmethod
    def _known_types(cls, value):
        for column, declared in value.items():
            if declared not in ("integer", "number", "boolean", "iso_timestamp", "epoch_seconds") \
                    and not declared.startswith("timestamp:"):
                raise ValueError(f"column {column}: unknown type {declared!r} (integer, number, boolean, "
                                 "iso_timestamp, epoch_seconds, timestamp:<strptime format>)")
        return value


class RestEndpoint(TableSpec):
    path: str
    data_selector: str = "data"
    cursor_field: str | None = None  # field of a record that orders updates (e.g. updated_at)
    cursor_param: str | None = None  # query parameter that filters on it (e.g. updated_since)
    pagination: Literal["cursor", "page", "offset"] = "cursor"
    page_size: int = 1000
    next_cursor_field: str = "next_cursor"  # cursor pagination: response field with the next token


class RestApiSource(Strict):
    kind: Literal["rest_api"]
    base_url: EnvValue
    auth: Auth = Field(default_factory=Auth)
    timeout_seconds: float = 30
    max_attempts: int = 8
    endpoints: list[RestEndpoint]


class Open311Source(Strict):
    kind: Literal["open311"]
    base_url: EnvValue  # the GeoReport v2 endpoint, e.g. https://city.example/open311/v2
    api_key: EnvValue | None = None
    jurisdiction_id: str | None = None
    format: Literal["json", "xml"] = "json"
    window_days: int = 90
    page_size: int = 1000
    first_date: str  # earliest requested_datetime to read, ISO date
    timeout_seconds: float = 30
    max_attempts: int = 8
    services: TableSpec = Field(default_factory=lambda: TableSpec(name="services", primary_key=["service_code"]))
    requests: TableSpec = Field(default_factory=lambda: TableSpec(name="requests", primary_key=["service_request_id"]))


class SqlTable(TableSpec):
    cursor_field: str | None = None  # column that orders updates; None: full reload each run
    cursor_format: str | None = None  # strptime format when the cursor column is text


class SqlDatabaseSource(Strict):
    kind: Literal["sql_database"]
    url: EnvValue  # SQLAlchemy URL
    db_schema: str | None = None
    backend: Literal["pyarrow", "connectorx"] = "pyarrow"
    chunk_size: int = 50_000
    tables: list[SqlTable]


class FileFamily(TableSpec):
    pattern: str  # glob inside the folder, e.g. "城管工单_*.csv"
    format: Literal["csv", "xlsx", "json"]
    columns: list[str] | None = None  # expected header; a file without these columns is set aside
    sheet: str | None = None


class FileDropSource(Strict):
    kind: Literal["file_drop"]
    folder: EnvValue
    encoding: str = "auto"  # auto-detects UTF-8 (with/without BOM), GB18030/GBK
    files: list[FileFamily]


class SourceEntry(Strict):
    name: str
    department: str  # owning department code (ref_departments) or 12345 for the hotline itself
    description: str = ""
    timezone: str = "Asia/Shanghai"
    lookback_days: float = 3.0
    store_raw_identifiers: bool = False  # keep encrypted identifiers in the restricted schema
    system: Annotated[RestApiSource | Open311Source | SqlDatabaseSource | FileDropSource, Field(discriminator="kind")]

    @field_validator("name")
    @classmethod
    def _identifier(cls, value):
        if not NAME_PATTERN.match(value):
            raise ValueError("must be lower-case letters, digits and _ (it names the raw dataset raw_<name>)")
        return value

    @property
    def kind(self) -> str:
        return self.system.kind

    @property
    def dataset(self) -> str:
        return f"raw_{self.name}"

    @property
    def tables(self) -> list[TableSpec]:
        system = self.system
        if isinstance(system, RestApiSource):
            return list(system.endpoints)
        if isinstance(system, Open311Source):
            return [system.services, system.requests]
        if isinstance(system, SqlDatabaseSource):
            return list(system.tables)
        return list(system.files)

    def table(self, name: str) -> TableSpec:
        for spec in self.tables:
            if spec.name == name:
                return spec
        raise KeyError(f"source {self.name} has no table {name!r}")


class Registry(Strict):
    sources: list[SourceEntry]

    @model_validator(mode="after")
    def _unique(self):
        names = [s.name for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique; repeated: {', '.join(duplicates)}")
        return self

    def get(self, name: str) -> SourceEntry:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(f"no source {name!r} in the registry; known: {', '.join(s.name for s in self.sources)}")


def _describe(error: dict, raw: dict, path: Path) -> str:
    loc = list(error["loc"])
    where = str(path)
    if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
        entries = raw.get("sources") or []
        name = entries[loc[1]].get("name", "?") if loc[1] < len(entries) and isinstance(entries[loc[1]], dict) else "?"
        where += f": sources[{loc[1]}] (name: {name})"
        loc = loc[2:]
    field_path = ".".join(str(part) for part in loc if part not in ("rest_api", "open311", "sql_database", "file_drop"))
    return f"{where}: {field_path or '(entry)'}: {error['msg']}"


def load_registry(path: Path | None = None) -> Registry:
    path = Path(path or os.environ.get("CV_SOURCE_REGISTRY") or DEFAULT_REGISTRY)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise RegistryError(f"{path}: registry file not found") from exc
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Registry.model_validate(raw)
    except ValidationError as exc:
        raise RegistryError("\n".join(_describe(e, raw, path) for e in exc.errors())) from exc
