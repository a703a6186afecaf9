"""The hotline's base models (base_hotline__orders / __events: the raw tables parsed once, stored
incrementally by load) equal a --full-refresh build after every load, on DuckDB and on PostgreSQL,
and so do the staging views over them. The loads: the hotline ingested three times as its clock
advances (orders re-delivered with changed content, merged over their raw rows), then a dlt load
package extracted before the last ingestion but loaded after it, so its load id is older than the
newest one the base tables already hold (dlt completes a package a crash left pending on the next
run). A hand-made mark on a stored row that no new load touches survives each incremental build:
the build really parsed only the new loads."""

from __future__ import annotations

import io
import shutil
from collections import Counter
from contextlib import closing
from datetime import datetime, timedelta

import dlt
import duckdb
import psycopg2
import pytest
import sqlalchemy as sa
from psycopg2 import sql

from ingestion.pipeline import run
from simulator.servers import SandboxServers

SELECTION = ("base_hotline__orders", "base_hotline__events", "stg_hotline__orders", "stg_hotline__events")
RELATIONS = tuple(f"staging.{model}" for model in SELECTION)
RAW_TABLES = ("orders", "events")
MARK = "marked by the test: no new load touches this row"


def _rows(cursor, relation: str) -> Counter:
    cursor.execute(f"select * from {relation}")
    return Counter(tuple((type(value).__name__, value) for value in row) for row in cursor.fetchall())


def _copy_text(value) -> str:
    return "\\N" if value is None else str(value).replace("\\", "\\\\").replace("\t", "\\t").replace(
        "\n", "\\n").replace("\r", "\\r")


class Engines:
    """The warehouse on DuckDB and a PostgreSQL database fed the same raw hotline tables."""

    def __init__(self, work, warehouse, dsn: str, pg_env: dict, dbt):
        self.work, self.warehouse, self.dsn, self.pg_env, self.dbt = work, warehouse, dsn, pg_env, dbt

    def _dbt(self, engine: str, *args: str) -> None:
        target = ("--target", "postgres") if engine == "postgres" else ()
        result = self.dbt(self.work, *args, *target, warehouse=self.warehouse,
                          env=self.pg_env if engine == "postgres" else None, name=engine)
        assert result.returncode == 0, result.stdout[-3000:]

    def seed(self) -> None:
        for engine in ("duckdb", "postgres"):
            self._dbt(engine, "seed")

    def copy_raw_to_postgres(self) -> None:
        """Replace the PostgreSQL raw hotline tables by the DuckDB ones (all text, load ids kept)."""
        with duckdb.connect(str(self.warehouse), read_only=True) as source, \
                closing(psycopg2.connect(self.dsn)) as target, target, target.cursor() as cursor:
            cursor.execute("create schema if not exists raw_hotline")
            for table in RAW_TABLES:
                names = [r[0] for r in source.execute(
                    "select column_name from information_schema.columns where table_schema = 'raw_hotline' "
                    "and table_name = ? order by ordinal_position", [table]).fetchall()]
                qualified = sql.Identifier("raw_hotline", table)
                cursor.execute(sql.SQL("drop table if exists {}").format(qualified))
                cursor.execute(sql.SQL("create table {} ({})").format(qualified, sql.SQL(", ").join(
                    sql.SQL("{} text").format(sql.Identifier(name)) for name in names)))
                rows = source.execute(f"select {', '.join(names)} from raw_hotline.{table}").fetchall()
                buffer = io.StringIO("".join("\t".join(map(_copy_text, row)) + "\n" for row in rows))
                cursor.copy_expert(sql.SQL("copy {} from stdin").format(qualified).as_string(cursor), buffer)

    def rows(self, engine: str) -> dict[str, Counter]:
        if engine == "duckdb":
            with duckdb.connect(str(self.warehouse), read_only=True) as con:
                return {relation: _rows(con.cursor(), relation) for relation in RELATIONS}
        with closing(psycopg2.connect(self.dsn)) as con, con.cursor() as cursor:
            return {relation: _rows(cursor, relation) for relation in RELATIONS}

    def execute(self, engine: str, statement: str, params=()) -> list[tuple]:
        if engine == "duckdb":
            with duckdb.connect(str(self.warehouse)) as con:
                return con.execute(statement.replace("%s", "?"), list(params)).fetchall()
        with closing(psycopg2.connect(self.dsn)) as con, con, con.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def build_and_compare(self, first: bool = False) -> dict[str, dict[str, Counter]]:
        """On each engine: mark a stored row no new load touches (not on the `first` build), build
        incrementally, check the mark survived and lift it, then compare with a --full-refresh build.
        Returns the rows per engine."""
        self.copy_raw_to_postgres()
        built = {}
        for engine in ("duckdb", "postgres"):
            mark = [] if first else self.execute(engine, (
                "select raw_event_id, note from staging.base_hotline__events where raw_event_id in "
                "(select event_id from raw_hotline.events where cast(_dlt_load_id as decimal(20, 7)) = "
                "(select min(load_id) from staging.base_hotline__events)) order by raw_event_id limit 1"))
            if not first:
                assert mark, engine
                self.execute(engine, "update staging.base_hotline__events set note = %s where raw_event_id = %s",
                             (MARK, mark[0][0]))
            self._dbt(engine, "run", "--select", *SELECTION)
            if not first:
                assert self.execute(engine, "select note from staging.base_hotline__events where raw_event_id = %s",
                                    (mark[0][0],)) == [(MARK,)], f"{engine}: the incremental build rebuilt everything"
                self.execute(engine, "update staging.base_hotline__events set note = %s where raw_event_id = %s",
                             (mark[0][1], mark[0][0]))
            incremental = self.rows(engine)
            self._dbt(engine, "run", "--full-refresh", "--select", *SELECTION)
            full = self.rows(engine)
            for relation in RELATIONS:
                assert incremental[relation], (engine, relation)
                assert incremental[relation] - full[relation] == Counter(), (engine, relation, "only incremental")
                assert full[relation] - incremental[relation] == Counter(), (engine, relation, "only full refresh")
            built[engine] = incremental
        return built


@pytest.fixture(scope="module")
def engines(tmp_path_factory, postgres_url, dbt):
    work = tmp_path_factory.mktemp("staging_base_models")
    url = sa.engine.make_url(postgres_url)
    database = "cv_base_models"
    admin = psycopg2.connect(f"host={url.host} port={url.port} user={url.username} dbname={url.database}")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(database)))
        cursor.execute(sql.SQL("create database {} template template0 encoding 'UTF8'").format(
            sql.Identifier(database)))
    admin.close()
    pg_env = {"CV_PG_HOST": url.host, "CV_PG_PORT": str(url.port), "CV_PG_USER": url.username,
              "CV_PG_PASSWORD": url.password or "", "CV_PG_DATABASE": database}
    return Engines(work, work / "warehouse.duckdb", f"host={url.host} port={url.port} user={url.username} "
                   f"dbname={database}", pg_env, dbt)


def late_package(engines: Engines, work) -> tuple[dlt.Pipeline, str, str]:
    """A changed copy of the oldest order's first event, extracted and normalized by a second dlt
    pipeline into raw_hotline but not loaded yet. Returns (pipeline, event_id, its new note)."""
    with duckdb.connect(str(engines.warehouse), read_only=True) as con:
        event = con.sql("select * exclude (_dlt_load_id) from raw_hotline.events "
                            "order by order_no, event_id limit 1").to_arrow_table()
    event_id, note = event.column("event_id")[0].as_py(), f"re-sent late: {event.column('note')[0].as_py()}"
    changed = event.set_column(event.schema.get_field_index("note"), "note", [[note]])
    changed = changed.set_column(changed.schema.get_field_index("occurred_at"), "occurred_at",
                                 [["2020-01-02T03:04:05+08:00"]])
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    pipeline = dlt.pipeline(pipeline_name="late_hotline_events", pipelines_dir=str(work / "late_pipelines"),
                            destination=dlt.destinations.duckdb(str(engines.warehouse)), dataset_name="raw_hotline")
    pipeline.extract(dlt.resource(changed, name="events", primary_key="event_id", write_disposition="merge"))
    pipeline.normalize()
    return pipeline, event_id, note


def test_incremental_base_models_equal_a_full_refresh(engines, pipeline_city, monkeypatch):
    shared, manifest = pipeline_city
    folder = engines.work / "sandbox"
    shutil.copytree(shared, folder)
    monkeypatch.setenv("CV_SANDBOX", str(folder))
    horizon = datetime.fromisoformat(manifest["horizon"])
    engines.seed()
    snapshots = []
    with SandboxServers(folder, hotline_port=0, open311_port=0, hotline_token="base-models") as servers:
        monkeypatch.setenv("CV_HOTLINE_URL", servers.hotline_url)
        monkeypatch.setenv("CV_HOTLINE_TOKEN", "base-models")
        for days_before in (12, 6, 0):
            if days_before == 0:
                late, late_event, late_note = late_package(engines, engines.work)
            servers.set_clock(horizon - timedelta(days=days_before) if days_before else None)
            run("hotline", engines.warehouse)
            snapshots.append(engines.build_and_compare(first=not snapshots))

    # orders re-delivered with changed content replaced their rows (new load id, new status or time)
    def orders(built):
        return {row[1][1]: row for row in built["duckdb"]["staging.stg_hotline__orders"]}
    first, last = orders(snapshots[0]), orders(snapshots[-1])
    changed = [o for o in first if o in last and first[o][0] != last[o][0] and first[o][3:] != last[o][3:]]
    assert changed and len(first) < len(last)

    newest = engines.execute("duckdb", "select max(load_id) from staging.base_hotline__events")[0][0]
    late.load()
    late_load = engines.execute("duckdb", "select cast(_dlt_load_id as decimal(20, 7)) from raw_hotline.events "
                                          "where event_id = %s", (late_event,))[0][0]
    assert late_load < newest  # an older load arrived after a newer one was built
    built = engines.build_and_compare()
    for engine in ("duckdb", "postgres"):
        assert engines.execute(engine, "select note, occurred_at, load_id from staging.stg_hotline__events "
                                       "where event_id = %s", (late_event,)) == [
            (late_note, datetime(2020, 1, 2, 3, 4, 5), late_load)], engine
        assert sum(built[engine]["staging.stg_hotline__events"].values()) == sum(
            snapshots[-1][engine]["staging.stg_hotline__events"].values()), engine  # replaced, not added
