"""PostgreSQL serving: the marts and indicators published to a PostgreSQL database for BI tools and
departments, with one read role per department limited to its own rows by row-level security.

Connection: CV_SERVING_PG_URL (a SQLAlchemy or libpq URL of a user that may create schemas and
roles). Roles: <prefix>dept_<code> per department (e.g. cv_dept_swj) and <prefix>analyst; a
role's password comes from CV_SERVING_PG_PASSWORD_<ROLE> (CV_SERVING_PG_PASSWORD_CV_DEPT_SWJ);
without one the role is NOLOGIN (grant it to a login user instead). Nothing secret is in git.

One transaction per publication: every table of the configured schemas is replaced (truncated and
reloaded by COPY when its columns are unchanged, else dropped and re-created), policies and grants
are set, the privacy gate scans the tables as stored, and only then is it committed: readers see
the previous publication until the commit, never half of one.

Access (decisions):
* analyst: SELECT on everything.
* a department: SELECT on the reference tables (publish.yaml serving.postgres.reference_tables,
  the dimensions by default) and on the shared tables (department_shares), where a policy per
  department role keeps only its own rows — the same rule as the file shares (lead unit, 协办 via
  the event log, a district government's district) — and column privileges leave out the
  excluded columns (caller keys). Views shares.<name> (security_invoker) select exactly the
  granted columns, so `select * from shares.work_orders` works for a department role.
* everything else (and PUBLIC): nothing.
"""

from __future__ import annotations

import fnmatch
import io
import os
import re
import time
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field

import duckdb
import psycopg2
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg2 import sql

from citizen_voice import warehouse
from citizen_voice.publish import gate
from citizen_voice.publish.config import PublishConfig, SharedTable, load_config
from citizen_voice.publish.gate import Hit, KnownValues, PersonalDataFound
from citizen_voice.publish.shares import EVENTS_TABLE, Department, departments

SHARES_SCHEMA = "shares"
PG_TYPES = {"VARCHAR": "text", "BIGINT": "bigint", "INTEGER": "integer", "SMALLINT": "smallint",
            "TINYINT": "smallint", "HUGEINT": "numeric", "UBIGINT": "numeric", "UINTEGER": "bigint",
            "DOUBLE": "double precision", "FLOAT": "real", "BOOLEAN": "boolean", "DATE": "date",
            "TIMESTAMP": "timestamp without time zone", "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
            "TIME": "time without time zone",
            "JSON": "jsonb", "UUID": "uuid", "INTERVAL": "interval"}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),(\d+)\)$")
_SCANNED_PG = ("text", "bigint", "integer", "smallint", "numeric", "double precision", "real", "jsonb")


class ServingNotConfigured(RuntimeError):
    """The PostgreSQL serving URL is not set."""


@dataclass
class PostgresReport:
    tables: dict[str, int] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # role -> login | nologin
    policies: int = 0
    seconds: float = 0.0


def serving_url(config: PublishConfig | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    config = config or load_config()
    return (environ if environ is not None else os.environ).get(config.serving.postgres.url_env) or None


def libpq_dsn(url: str) -> str:
    """psycopg2 takes libpq URLs: drop a SQLAlchemy driver suffix (postgresql+psycopg2://)."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


def department_role(config: PublishConfig, code: str) -> str:
    return f"{config.serving.postgres.role_prefix}dept_{code.lower()}"


def analyst_role(config: PublishConfig) -> str:
    return config.serving.postgres.role_prefix + config.serving.postgres.analyst_role


def pg_type(duckdb_type: str) -> str:
    match = _DECIMAL.match(duckdb_type)
    if match:
        return f"numeric({match[1]},{match[2]})"
    return PG_TYPES.get(duckdb_type, "text")


@dataclass(frozen=True)
class SourceTable:
    schema: str
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, PostgreSQL type)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def source_tables(con: duckdb.DuckDBPyConnection, schemas) -> list[SourceTable]:
    found = []
    for schema, table in con.execute(
            "select table_schema, table_name from information_schema.tables where table_schema in "
            f"({', '.join('?' * len(schemas))}) order by 1, 2", list(schemas)).fetchall():
        columns = con.execute(f'describe "{schema}"."{table}"').fetchall()
        found.append(SourceTable(schema, table, tuple((c[0], pg_type(c[1])) for c in columns)))
    return found


def _ident(*parts: str) -> sql.Identifier:
    return sql.Identifier(*parts)


def ensure_role(cur, role: str, password: str | None) -> str:
    cur.execute("select 1 from pg_roles where rolname = %s", [role])
    if cur.fetchone() is None:
        cur.execute(sql.SQL("create role {}").format(_ident(role)))
    if password:
        cur.execute(sql.SQL("alter role {} login password %s").format(_ident(role)), [password])
        return "login"
    cur.execute(sql.SQL("alter role {} nologin").format(_ident(role)))
    return "nologin"


def replace_table(cur, con: duckdb.DuckDBPyConnection, table: SourceTable) -> int:
    cur.execute("select column_name, format_type(a.atttypid, a.atttypmod) from information_schema.columns c "
                "join pg_attribute a on a.attrelid = (quote_ident(c.table_schema) || '.' || "
                "quote_ident(c.table_name))::regclass and a.attname = c.column_name "
                "where c.table_schema = %s and c.table_name = %s order by c.ordinal_position",
                [table.schema, table.name])
    existing = tuple(cur.fetchall())
    target = _ident(table.schema, table.name)
    if existing == table.columns:
        cur.execute(sql.SQL("truncate {}").format(target))
    else:
        cur.execute(sql.SQL("drop table if exists {} cascade").format(target))
        definitions = sql.SQL(", ").join(sql.SQL("{} {}").format(_ident(n), sql.SQL(t)) for n, t in table.columns)
        cur.execute(sql.SQL("create table {} ({})").format(target, definitions))
    data = con.sql(f'select * from "{table.schema}"."{table.name}"').to_arrow_table()
    buffer = io.BytesIO()
    pacsv.write_csv(data, buffer)  # strings quoted: an empty string stays '' and NULL stays NULL
    buffer.seek(0)
    cur.copy_expert(sql.SQL("copy {} from stdin with (format csv, header true)").format(target).as_string(cur),
                    buffer)
    return data.num_rows


def policy_condition(spec: SharedTable, value: str) -> sql.Composable:
    """The same rows as shares.share_query selects for the department."""
    condition = sql.SQL("{} = {}").format(_ident(spec.department_column), sql.Literal(value))
    if spec.assisting:
        events_schema, events_table = EVENTS_TABLE.split(".")
        condition = sql.SQL("({own} or order_no in (select order_no from {events} where dept_code = {value} "
                            "and role = 'assist'))").format(own=condition, events=_ident(events_schema, events_table),
                                                            value=sql.Literal(value))
    if spec.row_filter:
        condition = sql.SQL("{} and ({})").format(condition, sql.SQL(spec.row_filter))
    return condition


def secure_shared_table(cur, spec: SharedTable, table: SourceTable, config: PublishConfig,
                        units: list[Department]) -> int:
    target = _ident(table.schema, table.name)
    cur.execute(sql.SQL("alter table {} enable row level security").format(target))
    cur.execute("select policyname from pg_policies where schemaname = %s and tablename = %s",
                [table.schema, table.name])
    for (name,) in cur.fetchall():
        cur.execute(sql.SQL("drop policy {} on {}").format(_ident(name), target))
    analyst = analyst_role(config)
    cur.execute(sql.SQL("create policy {} on {} for select to {} using (true)").format(
        _ident(f"{analyst}_all"), target, _ident(analyst)))
    allowed = [c for c, _ in table.columns if c not in spec.exclude_columns]
    column_list = sql.SQL(", ").join(_ident(c) for c in allowed)
    policies = 1
    for unit in units:  # every department may query the table; a policy lets it see its own rows only
        role = department_role(config, unit.code)
        cur.execute(sql.SQL("grant select ({}) on {} to {}").format(column_list, target, _ident(role)))
        value = unit.code if spec.key == "department_code" else unit.district_code
        if value is not None:
            cur.execute(sql.SQL("create policy {} on {} for select to {} using ({})").format(
                _ident(f"{role}_own"), target, _ident(role), policy_condition(spec, value)))
            policies += 1
    cur.execute(sql.SQL("create or replace view {} with (security_invoker = true) as select {} from {}").format(
        _ident(SHARES_SCHEMA, spec.name), column_list, target))
    roles = [analyst, *(department_role(config, u.code) for u in units)]
    cur.execute(sql.SQL("grant select on {} to {}").format(
        _ident(SHARES_SCHEMA, spec.name), sql.SQL(", ").join(_ident(r) for r in roles)))
    return policies


def scan_postgres(cur, tables: list[SourceTable], known: KnownValues | None) -> list[Hit]:
    """The privacy gate over the tables as stored in PostgreSQL, by the gate's own scan: per column,
    PostgreSQL narrows the distinct values to those the gate can flag at all (7+ digits and not a
    plain date/time, or equal to a known name), and gate.scan_relation judges them in DuckDB exactly
    as it judges the published files and the snapshot's tables."""
    names = sorted(known.names) if known is not None else []
    hits: list[Hit] = []
    with warehouse.scratch_connection() as con:
        for table in tables:
            target = _ident(table.schema, table.name)
            candidates: dict[str, list[str]] = {}
            for column, pg in table.columns:
                if not pg.startswith(_SCANNED_PG):
                    continue
                if pg.startswith(("double precision", "real", "numeric(")):  # whole values only, as the gate
                    value = sql.SQL("(case when {c} = trunc({c}) then trunc({c})::numeric::text end)").format(
                        c=_ident(column))
                else:
                    value = sql.SQL("{}::text").format(_ident(column))
                condition = sql.SQL("(length(regexp_replace({v}, '[^0-9０-９]', '', 'g')) >= %s and {v} !~ %s)"
                                    ).format(v=value)
                params: list = [gate.MIN_DIGITS, gate.PLAIN_TIME]
                if names and pg == "text":
                    condition = sql.SQL("{} or btrim({}) = any(%s)").format(condition, value)
                    params.append(names)
                cur.execute(sql.SQL("select distinct {} from {} where {}").format(value, target, condition), params)
                found = [r[0] for r in cur.fetchall()]
                if found:
                    candidates[column] = found
            if not candidates:
                continue
            longest = max(len(values) for values in candidates.values())
            cells = pa.table({column: pa.array(values + [None] * (longest - len(values)), pa.string())
                              for column, values in candidates.items()})
            con.register("_cv_pg_arrow", cells)  # a table, not the view: the scan reads it from other cursors
            con.execute("create or replace table _cv_pg_cells as select * from _cv_pg_arrow")
            con.unregister("_cv_pg_arrow")
            hits += gate.scan_relation(con, "_cv_pg_cells", table.qualified, known)[0]
    return hits


def is_reference(config: PublishConfig, qualified: str) -> bool:
    return any(fnmatch.fnmatchcase(qualified, pattern) for pattern in config.serving.postgres.reference_tables)


def publish_postgres(url: str | None = None, warehouse_path=None, config: PublishConfig | None = None,
                     known: KnownValues | None = None, environ: Mapping[str, str] | None = None) -> PostgresReport:
    """Publish the serving schemas to PostgreSQL in one transaction (see the module docstring)."""
    started = time.perf_counter()
    config = config or load_config()
    environ = os.environ if environ is None else environ
    url = url or serving_url(config, environ)
    if not url:
        raise ServingNotConfigured(f"{config.serving.postgres.url_env} is not set: PostgreSQL serving is not configured")
    if known is None:
        known = gate.load_known_values()
    report = PostgresReport()
    specs = {spec.table: spec for spec in config.department_shares.tables}
    with warehouse.connect(warehouse_path, read_only=True) as con, \
            closing(psycopg2.connect(libpq_dsn(url))) as pg:
        schemas = [r[0] for r in con.execute(
            "select schema_name from information_schema.schemata where catalog_name = current_database()"
        ).fetchall()]
        schemas = [s for s in config.serving.schemas if s in schemas]
        tables = source_tables(con, schemas)
        units = departments(con)
        with pg, pg.cursor() as cur:  # one transaction: committed on success, rolled back on any error
            analyst = analyst_role(config)
            prefix = config.serving.postgres.password_env_prefix
            roles = [analyst, *(department_role(config, u.code) for u in units)]
            for role in roles:
                report.roles[role] = ensure_role(cur, role, environ.get(prefix + role.upper()))
            role_list = sql.SQL(", ").join(_ident(r) for r in roles)
            for schema in [*schemas, SHARES_SCHEMA]:
                cur.execute(sql.SQL("create schema if not exists {}").format(_ident(schema)))
                cur.execute(sql.SQL("revoke all on schema {} from public").format(_ident(schema)))
                cur.execute(sql.SQL("grant usage on schema {} to {}").format(_ident(schema), role_list))
            for table in tables:
                report.tables[table.qualified] = replace_table(cur, con, table)
                target = _ident(table.schema, table.name)
                cur.execute(sql.SQL("revoke all on {} from public").format(target))
                cur.execute(sql.SQL("grant select on {} to {}").format(target, _ident(analyst)))
                if table.qualified in specs:
                    report.policies += secure_shared_table(cur, specs[table.qualified], table, config, units)
                elif is_reference(config, table.qualified):
                    cur.execute(sql.SQL("grant select on {} to {}").format(target, role_list))
            hits = scan_postgres(cur, tables, known)
            if hits:
                raise PersonalDataFound(hits)
    report.seconds = round(time.perf_counter() - started, 3)
    return report
