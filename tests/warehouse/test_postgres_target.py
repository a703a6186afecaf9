"""The PostgreSQL target against a real server: a small sandbox city ingested into DuckDB, its raw
tables copied by COPY into a database of a throwaway PostgreSQL 15 cluster (with a Chinese ICU
collation where the server has ICU), the whole project built on both engines (`dbt build`, unit
tests included, and `dbt build --target postgres`, side by side), and the marts (plus the unified
orders and the SLA) compared row for row as typed Python values. Also: `dbt docs generate` on DuckDB.
The PostgreSQL fixture skips the module only when the PostgreSQL binaries are missing."""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import date, datetime

import duckdb
import psycopg2
import pytest
import sqlalchemy as sa
from psycopg2 import sql

from simulator.generator import SandboxParams

# dlt's merge-staging datasets (raw_<source>_staging) and bookkeeping tables (_dlt_*) are dlt's own.
DLT_STAGING_SUFFIX = "_staging"
# DuckDB column types as PostgreSQL types; everything the ingestion boundary writes is text but the
# file connectors' line numbers and 住建局's log id (integers) and quarantine times.
PG_TYPES = {"VARCHAR": "text", "BIGINT": "bigint", "INTEGER": "integer", "DOUBLE": "double precision",
            "BOOLEAN": "boolean", "TIMESTAMP": "timestamp", "TIMESTAMP WITH TIME ZONE": "timestamptz",
            "DATE": "date", "JSON": "jsonb"}
COMPARED = {  # relation -> key: every mart, the unified orders (rejected ones included) and the SLA
    "marts.fct_work_orders": "order_no", "marts.fct_work_order_events": "event_id",
    "marts.dim_district": "district_code", "marts.dim_street": "street_code",
    "marts.dim_community": "community_code", "marts.dim_department": "department_code",
    "marts.dim_category": "category_code", "marts.dim_channel": "channel_code", "marts.dim_date": "date_day",
    "intermediate.int_work_orders_unified": "order_no", "intermediate.int_work_order_sla": "order_no",
}
BATCH_ROWS = 20_000
CITY = SandboxParams(days=30, orders_per_day=40, seed=2027)


def _copy_text(value: object) -> str:
    """A value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    text = value.isoformat() if isinstance(value, datetime | date) else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_raw_to_postgres(warehouse, dsn: str) -> dict[str, int]:
    """Copy every raw_<source> schema's data tables (not dlt's _dlt_* tables nor its *_staging
    datasets) from DuckDB into PostgreSQL with the same schema, table and column names and types,
    by COPY, in one transaction. Returns row counts by schema.table."""
    counts: dict[str, int] = {}
    with duckdb.connect(str(warehouse), read_only=True) as source, closing(psycopg2.connect(dsn)) as target:
        tables = source.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema like 'raw\\_%' escape '\\' and table_schema not like ? "
            "and table_name not like '\\_dlt\\_%' escape '\\' and table_type = 'BASE TABLE' order by 1, 2",
            [f"%{DLT_STAGING_SUFFIX}"]).fetchall()
        with target, target.cursor() as cursor:  # commits on success
            for schema, table in tables:
                columns = source.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position", [schema, table]).fetchall()
                unknown = {kind for _, kind in columns if kind not in PG_TYPES}
                assert not unknown, f"{schema}.{table}: no PostgreSQL type for {unknown}"
                qualified = sql.Identifier(schema, table)
                names = [name for name, _ in columns]
                cursor.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
                cursor.execute(sql.SQL("create table {} ({})").format(qualified, sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(PG_TYPES[kind])) for name, kind in columns)))
                copy = sql.SQL("copy {} ({}) from stdin").format(
                    qualified, sql.SQL(", ").join(map(sql.Identifier, names))).as_string(cursor)
                rows = source.execute("select {} from {}.{}".format(
                    ", ".join(f'"{name}"' for name in names), f'"{schema}"', f'"{table}"'))
                counts[f"{schema}.{table}"] = 0
                while batch := rows.fetchmany(BATCH_ROWS):
                    buffer = io.StringIO("".join("\t".join(map(_copy_text, row)) + "\n" for row in batch))
                    cursor.copy_expert(copy, buffer)
                    counts[f"{schema}.{table}"] += len(batch)
    return counts


def _typed(row: tuple) -> tuple:
    """A row as (Python type, value) pairs: True == 1 and Decimal(1) == 1 in Python, not here."""
    return tuple((type(value).__name__, value) for value in row)


def _fetch_sorted(cursor, relation: str, key: str) -> tuple[list[str], list[tuple]]:
    # sorted in Python (code-point order), not by either engine's collation
    cursor.execute(f"select * from {relation}")
    names = [d[0] for d in cursor.description]
    position = names.index(key)
    return names, [_typed(r) for r in sorted(cursor.fetchall(), key=lambda row: row[position])]


def duckdb_rows(warehouse, relation: str, key: str) -> tuple[list[str], list[tuple]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return _fetch_sorted(con.cursor(), relation, key)


def postgres_rows(dsn: str, relation: str, key: str) -> tuple[list[str], list[tuple]]:
    with closing(psycopg2.connect(dsn)) as con, con.cursor() as cursor:
        return _fetch_sorted(cursor, relation, key)


def create_database(admin_dsn: str, database: str) -> str:
    """A fresh UTF-8 database with a Chinese ICU collation (zh-Hans-CN, as a city's production
    server would sort text; the test cluster itself is initialised with --locale=C), or the
    cluster's default collation where the server has no ICU. Returns the collation used."""
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(database)))
            try:
                cursor.execute(sql.SQL("create database {} template template0 encoding 'UTF8' "
                                       "locale_provider icu icu_locale 'zh-Hans-CN' locale 'C'").format(
                    sql.Identifier(database)))
                return "icu zh-Hans-CN"
            except psycopg2.Error:  # server built without ICU
                cursor.execute(sql.SQL("create database {} template template0 encoding 'UTF8'").format(
                    sql.Identifier(database)))
                return "default"
    finally:
        admin.close()


@pytest.fixture(scope="module")
def both_engines(tmp_path_factory, postgres_url, ingest_city, dbt):
    """The city built with dbt on DuckDB (then `dbt docs generate`) and, at the same time, on
    PostgreSQL from the same raw data."""
    timings: dict[str, float] = {}
    work = tmp_path_factory.mktemp("postgres_target")
    clock = time.perf_counter()
    city = ingest_city(work, CITY)
    timings["city + ingest"] = time.perf_counter() - clock

    url = sa.engine.make_url(postgres_url)
    database = "citizen_voice"  # its own database in the session's cluster
    collation = create_database(f"host={url.host} port={url.port} user={url.username} dbname={url.database}",
                                database)
    dsn = f"host={url.host} port={url.port} user={url.username} dbname={database}"
    clock = time.perf_counter()
    copied = copy_raw_to_postgres(city["warehouse"], dsn)
    timings["copy raw to postgres"] = time.perf_counter() - clock

    pg_env = {"CV_PG_HOST": url.host, "CV_PG_PORT": str(url.port), "CV_PG_USER": url.username,
              "CV_PG_PASSWORD": url.password or "", "CV_PG_DATABASE": database}

    def on_duckdb() -> tuple:
        clock = time.perf_counter()
        built = dbt(work, "build", warehouse=city["warehouse"], name="duckdb")
        timings["dbt build duckdb"] = time.perf_counter() - clock
        clock = time.perf_counter()
        docs = dbt(work, "docs", "generate", warehouse=city["warehouse"], name="docs")
        timings["dbt docs generate duckdb"] = time.perf_counter() - clock
        return built, docs

    def on_postgres():
        clock = time.perf_counter()
        built = dbt(work, "build", "--target", "postgres", env=pg_env, name="postgres")
        timings["dbt build postgres"] = time.perf_counter() - clock
        return built

    # the two engines share nothing: build them side by side
    with ThreadPoolExecutor(max_workers=2) as pool:
        duckdb_future, postgres_future = pool.submit(on_duckdb), pool.submit(on_postgres)
        (duckdb_build, docs), postgres_build = duckdb_future.result(), postgres_future.result()
    print(f"postgres database collation: {collation}; timings (s):", {k: round(v, 1) for k, v in timings.items()})
    return {"work": work, "city": city, "dsn": dsn, "collation": collation, "copied": copied, "duckdb": duckdb_build,
            "postgres": postgres_build, "docs": docs, "timings": timings}


def _statuses(work, name: str) -> dict[str, str]:
    results = json.loads((work / f"{name}_target" / "run_results.json").read_text(encoding="utf-8"))
    return {r["unique_id"]: r["status"] for r in results["results"]}


def test_raw_tables_are_copied(both_engines):
    copied = both_engines["copied"]
    assert {"raw_hotline.orders", "raw_hotline.events", "raw_app311.requests", "raw_app311.services",
            "raw_zhujian.gd_main", "raw_zhujian.gd_lz", "raw_chengguan.tickets", "raw_gongdian.tickets",
            "raw_survey.visits"} <= set(copied)
    assert not [t for t in copied if t.split(".")[1].startswith("_dlt") or t.split(".")[0].endswith("_staging")]
    assert all(copied[t] > 0 for t in ("raw_hotline.orders", "raw_hotline.events", "raw_survey.visits"))
    with duckdb.connect(str(both_engines["city"]["warehouse"]), read_only=True) as con:
        for table, rows in copied.items():
            assert con.execute(f"select count(*) from {table}").fetchone()[0] == rows, table
    with closing(psycopg2.connect(both_engines["dsn"])) as con, con.cursor() as cursor:
        cursor.execute("select table_name, data_type, count(*) from information_schema.columns "
                       "where table_schema = 'raw_hotline' group by 1, 2 order by 1, 2")
        types = {(table, kind) for table, kind, _ in cursor.fetchall()}
        assert {("orders", "text"), ("events", "text")} <= types  # all-text tables stay all text
        assert not {t for t in types if t[0] in ("orders", "events") and t[1] != "text"}


def test_both_builds_are_green_with_the_same_outcomes(both_engines):
    work = both_engines["work"]
    statuses = {}
    for engine in ("duckdb", "postgres"):
        result = both_engines[engine]
        assert result.returncode == 0, f"{engine}:\n" + result.stdout[-6000:] + result.stderr[-2000:]
        statuses[engine] = _statuses(work, engine)
        assert not {k: s for k, s in statuses[engine].items() if s in ("error", "fail", "skipped")}, engine
        unit_tests = {k: s for k, s in statuses[engine].items() if k.startswith("unit_test.")}
        assert len(unit_tests) >= 6 and set(unit_tests.values()) == {"pass"}, (engine, unit_tests)
    # the same nodes, and the same data tests warn (the sandbox's injected faults) on both engines
    assert statuses["duckdb"] == statuses["postgres"]


@pytest.mark.parametrize("relation", sorted(COMPARED))
def test_tables_are_equal_on_both_engines(both_engines, relation):
    key = COMPARED[relation]
    names_duckdb, rows_duckdb = duckdb_rows(both_engines["city"]["warehouse"], relation, key)
    names_postgres, rows_postgres = postgres_rows(both_engines["dsn"], relation, key)
    assert names_duckdb == names_postgres
    assert rows_duckdb, relation
    assert len(rows_duckdb) == len(rows_postgres)
    for left, right in zip(rows_duckdb, rows_postgres, strict=True):
        assert left == right, (relation, {n: (a, b) for n, a, b in zip(names_duckdb, left, right, strict=True)
                                          if a != b})


def test_docs_generate_on_duckdb(both_engines):
    result = both_engines["docs"]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    catalog = json.loads((both_engines["work"] / "docs_target" / "catalog.json").read_text(encoding="utf-8"))
    assert not catalog.get("errors")
    nodes = {key.split(".")[-1] for key in catalog["nodes"]}
    assert {"fct_work_orders", "fct_work_order_events", "int_work_orders_unified", "stg_hotline__orders",
            "ref_calendar"} <= nodes
    columns = catalog["nodes"]["model.citizen_voice.fct_work_orders"]["columns"]
    assert {"order_no", "due_at", "is_overdue"} <= set(columns)
    assert "raw_hotline" in {key.split(".")[-2] for key in catalog["sources"]}
    assert (both_engines["work"] / "docs_target" / "index.html").exists()
