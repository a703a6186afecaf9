"""Department data shares: each department (承办单位) gets its own rows of the configured tables.

Which rows are a department's own (decisions):
* work orders where it is the lead unit (主办, `lead_dept_code` after any 改派), plus — for tables
  configured with `assisting: true` — the orders it assisted on (协办: an event with its code and
  role 'assist'); a column `share_role` says 主办 or 协办. A unit that handled an order before it
  was reassigned away does not keep receiving it.
* events it acted in (`dept_code`), not the other units' steps on the same order.
* district-level tables (`key: district_code`) go to the district's government (区县 peer group).
No caller keys (departments do not need to link callers; see publish.yaml `exclude_columns`);
the caller's phone only as its display mask (138****5678). Names and ID numbers are not in the marts.

Output: <published>/shares/<department_code>/: tables with a `month_column` in month parts
<table>/month=YYYY-MM/part.parquet|.csv, the others whole as <table>.parquet|.csv;
data_dictionary.csv|.json and manifest.json (per part: rows, fingerprint, gated_against). The whole
shares folder is built aside, scanned by the privacy gate, then swapped in; on a rerun only the
parts whose rows changed are written and fully gated, the others are carried over (files.PartWriter).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from citizen_voice import settings
from citizen_voice.publish import files, gate
from citizen_voice.publish.config import PublishConfig, SharedTable, load_config
from citizen_voice.publish.files import PartsReport

ROLE_LEAD, ROLE_ASSIST = "主办", "协办"
EVENTS_TABLE = "marts.fct_work_order_events"
DEPARTMENT = "_cv_department"  # beside each row of shares_query: the department receiving it


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    district_code: str | None


@dataclass
class SharesReport:
    folder: Path
    departments: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # table name -> rows over all departments
    skipped_tables: list[str] = field(default_factory=list)  # optional tables not in the warehouse
    files: int = 0
    parts: PartsReport = field(default_factory=PartsReport)
    seconds: float = 0.0


def departments(con: duckdb.DuckDBPyConnection) -> list[Department]:
    rows = con.execute("select department_code, department_name, district_code from marts.dim_department "
                       "order by department_code").fetchall()
    return [Department(*row) for row in rows]


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {f"{s}.{t}" for s, t in con.execute(
        "select table_schema, table_name from information_schema.tables").fetchall()}


def available_specs(con: duckdb.DuckDBPyConnection, config: PublishConfig) -> tuple[list[SharedTable], list[str]]:
    """The configured tables present in the warehouse, and the optional ones skipped. A required
    table that is missing is an error."""
    present = existing_tables(con)
    specs, skipped = [], []
    for spec in config.department_shares.tables:
        if spec.table in present:
            specs.append(spec)
        elif spec.optional:
            skipped.append(spec.table)
        else:
            raise LookupError(f"shared table {spec.table} (publish.yaml department_shares) is not in the warehouse")
    return specs, skipped


def key_value(spec: SharedTable, department: Department) -> str | None:
    """The value of the department column that marks this department's rows (None: not applicable)."""
    return department.code if spec.key == "department_code" else department.district_code


def _kept_columns(con: duckdb.DuckDBPyConnection, spec: SharedTable) -> list[str]:
    columns = [r[0] for r in con.execute(f"describe {spec.table}").fetchall()]
    missing = [c for c in (spec.department_column, *spec.exclude_columns, *filter(None, [spec.month_column]))
               if c not in columns]
    if missing:
        raise LookupError(f"{spec.table} has no column(s) {missing} (publish.yaml department_shares.{spec.name})")
    if spec.assisting and "order_no" not in columns:
        raise LookupError(f"{spec.table}: assisting needs an order_no column")
    return [c for c in columns if c not in spec.exclude_columns]


def share_query(con: duckdb.DuckDBPyConnection, spec: SharedTable, value: str) -> tuple[str, list]:
    """SQL and parameters selecting one department's rows of `spec`."""
    columns = _kept_columns(con, spec)
    kept = ", ".join(f'"{c}"' for c in columns)
    column = f'"{spec.department_column}"'
    extra = f" and ({spec.row_filter})" if spec.row_filter else ""
    if not spec.assisting:
        return f"select {kept} from {spec.table} where {column} = ?{extra} order by all", [value]
    return (f"select {kept}, case when {column} = ? then '{ROLE_LEAD}' else '{ROLE_ASSIST}' end as share_role "
            f"from {spec.table} where ({column} = ? or order_no in "
            f"(select order_no from {EVENTS_TABLE} where dept_code = ? and role = 'assist')){extra} order by all",
            [value, value, value])


def shares_query(con: duckdb.DuckDBPyConnection, spec: SharedTable) -> str:
    """Every department's rows of `spec` in one query (one pass over the table instead of one per
    department), the receiving department's code in DEPARTMENT: for each department exactly the rows
    share_query selects for it, with the same share_role."""
    kept = ", ".join(f't."{c}"' for c in _kept_columns(con, spec))
    column = f't."{spec.department_column}"'
    source = f"(select * from {spec.table} where {spec.row_filter})" if spec.row_filter else spec.table
    own = (f"from {source} t join marts.dim_department d on d.{spec.key} = {column}")
    if not spec.assisting:
        return f"select {kept}, d.department_code as {DEPARTMENT} {own}"
    return (f"select {kept}, '{ROLE_LEAD}' as share_role, d.department_code as {DEPARTMENT} {own} "
            f"union all select {kept}, '{ROLE_ASSIST}' as share_role, d.department_code as {DEPARTMENT} "
            f"from {source} t join (select distinct order_no, dept_code from {EVENTS_TABLE} where role = 'assist') a "
            f"on a.order_no = t.order_no join marts.dim_department d on d.{spec.key} = a.dept_code "
            f"where {column} is distinct from d.{spec.key}")


def dictionary_rows(spec: SharedTable, schema: pa.Schema, config: PublishConfig) -> list[tuple]:
    model = spec.table_name
    sources = {c: (model, c) for c in schema.names}
    described = files.describe_columns(((f.name, str(f.type)) for f in schema), sources, config.dictionary)
    return [(spec.name, *row) for row in described]


def publish_shares(con: duckdb.DuckDBPyConnection, published: Path | None = None,
                   config: PublishConfig | None = None, known: gate.KnownValues | None = None) -> SharesReport:
    """Write every department's share, gate it, and swap it in as <published>/shares. Parts whose
    rows are unchanged since the current publication are carried over (see the module docstring)."""
    started = time.perf_counter()
    config = config or load_config()
    known = known if known is not None else gate.load_known_values()
    target = Path(published or settings.published_dir()) / "shares"
    specs, skipped = available_specs(con, config)
    report = SharesReport(folder=target, skipped_tables=skipped)
    staging = files.staging_folder(target)
    try:
        generated_at = datetime.now(UTC).isoformat(timespec="seconds")
        writer = files.PartWriter(con, known)
        units = departments(con)
        manifests, dictionaries, previous = {}, {}, {}
        for department in units:
            (staging / department.code).mkdir()
            manifests[department.code] = {"department_code": department.code, "department_name": department.name,
                                          "generated_at": generated_at, "tables": {}, "not_applicable": []}
            dictionaries[department.code] = []
            previous[department.code] = files.previous_manifest(
                target / department.code / "manifest.json").get("tables", {})
        for spec in specs:
            applicable = {d.code: d for d in units if key_value(spec, d) is not None}
            for department in units:
                if department.code not in applicable:
                    manifests[department.code]["not_applicable"].append(spec.name)
            sql = shares_query(con, spec)
            targets = {code: files.Target(staging / code, target / code,
                                          (previous[code].get(spec.name) or {}).get("parts", {}))
                       for code in applicable}
            month_sql = files.month_of(spec.month_column) if spec.month_column else None
            parts = writer.write(sql, [], spec.name, month_sql, targets, group=DEPARTMENT)
            described = dictionary_rows(spec, writer.empty_schema(sql, [], (DEPARTMENT,)), config)
            for code, department in applicable.items():
                rows = sum(p["rows"] for p in parts[code].values())
                value = key_value(spec, department)
                manifests[code]["tables"][spec.name] = {
                    "rows": rows, "source": spec.table,
                    "selected_by": f"{spec.department_column} = {value}" + (" or 协办" if spec.assisting else ""),
                    "layout": (f"{spec.name}/{files.MONTH_KEY}=YYYY-MM/part.parquet|.csv (by {spec.month_column})"
                               if spec.month_column else f"{spec.name}.parquet|.csv"),
                    "parts": parts[code]}
                report.rows[spec.name] = report.rows.get(spec.name, 0) + rows
                dictionaries[code] += described
        for department in units:
            files.write_dictionary(dictionaries[department.code], staging / department.code)
            files.write_json(manifests[department.code], staging / department.code / "manifest.json")
            report.departments += 1
        report.parts = writer.gate(staging)
        report.files = sum(1 for p in staging.rglob("*") if p.is_file())
        files.replace_folder(staging, target)
    except BaseException:
        files.discard_folder(staging)
        raise
    report.seconds = round(time.perf_counter() - started, 3)
    return report
