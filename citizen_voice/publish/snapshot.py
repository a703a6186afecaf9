"""The BI snapshot: a read-only DuckDB copy of the marts and indicators (and the quality and text
schemas when present) at <published>/serving/warehouse.duckdb.

It is built in a temporary file in the same folder, scanned by the privacy gate, made read-only
(mode 0444) and swapped in with os.replace: a BI tool reading the previous snapshot keeps reading
it undisturbed (its open file is unaffected by the rename), the next connection sees the new one
whole, and the pipeline's warehouse is never held by a BI tool. Table `meta.snapshot` says which
run a snapshot comes from.

Incremental: `meta.table_fingerprints` records per table a content fingerprint (from the count,
bit_xor and sum of the row digests (citizen_voice.digest), which it also keeps, and the column types,
computed over the warehouse's rows) and what it was gated against. The temporary file starts as a
file copy of the previous snapshot (a sequential copy); then per table, by fingerprint:
* unchanged: kept as it is, gated only as gate.regate_plan asks (newly known values, or nothing);
* changed, big, same columns: rows replaced (`_replace_rows`): the rows whose hash is no longer in
  the warehouse are deleted, the warehouse's rows whose hash is not in the copy are inserted. The
  result's figures, from the recorded ones and the digests of the rows replaced, must equal the
  warehouse's; otherwise (duplicate rows, a hash shared by two rows, or too many changed rows) the
  table is copied whole;
* otherwise (new, small, other columns) copied whole; tables gone from the warehouse are dropped.
Everything new is gated in full: whole copies, and the inserted rows of a replaced table (named as
the table); the rows kept from the previous snapshot as regate_plan asks. The content equals a
snapshot built from scratch (row order aside). A fresh build (no usable previous snapshot, or one
with more than MAX_FREE_SHARE of its blocks free) copies everything.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from citizen_voice import settings, warehouse
from citizen_voice.digest import row_digest_sql
from citizen_voice.publish import files, gate
from citizen_voice.publish.config import PublishConfig, load_config

META_SCHEMA = "meta"
FINGERPRINTS = f"{META_SCHEMA}.table_fingerprints"
SOURCE = "source"
DELTA = "_cv_snapshot_delta"  # in-memory catalog of the changed rows' hashes and inserted rows
ROW_LEVEL_MIN_ROWS = 100_000  # a changed table with fewer rows is copied whole
ROW_LEVEL_MAX_SHARE = 0.25  # more changed rows than this share of the table: copied whole
MAX_FREE_SHARE = 0.3  # a previous snapshot with more free blocks is not reused (built fresh)


@dataclass
class SnapshotReport:
    path: Path
    snapshot_id: str
    schemas: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)  # schema.table -> rows
    bytes: int = 0
    gated_tables: list[str] = field(default_factory=list)  # new content scanned in full (whole, or its new rows)
    rescanned_tables: list[str] = field(default_factory=list)  # kept content scanned for newly known values
    unscanned_tables: list[str] = field(default_factory=list)  # unchanged, gated before against the same values
    reused_previous: bool = False  # built on a copy of the previous snapshot
    copied_tables: list[str] = field(default_factory=list)  # copied whole from the warehouse
    replaced_rows: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> (deleted, inserted)
    seconds: float = 0.0


def snapshot_path(published: Path | None = None, config: PublishConfig | None = None) -> Path:
    config = config or load_config()
    return Path(published or settings.published_dir()) / config.serving.snapshot_file


def _name(qualified: str, catalog: str | None = None) -> str:
    schema, table = qualified.split(".", 1)
    return (f'"{catalog}".' if catalog else "") + f'"{schema}"."{table}"'


def list_tables(con: duckdb.DuckDBPyConnection, catalog: str, schemas: list[str]) -> list[str]:
    """schema.table of every table and view of `schemas` in `catalog`, in name order."""
    return [f"{s}.{t}" for s, t in con.execute(
        "select table_schema, table_name from information_schema.tables where table_catalog = ? "
        "and table_schema in (select unnest(?::varchar[])) order by 1, 2", [catalog, schemas]).fetchall()]


def column_types(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [tuple(r) for r in con.execute(f"select column_name, column_type from (describe {relation})").fetchall()]


def fingerprint_of(types: list[tuple[str, str]], count: int, xor, total) -> str:
    return files.content_fingerprint(json.dumps(types), count, xor, total)


def table_figures(con: duckdb.DuckDBPyConnection, relation: str, types: list[tuple[str, str]],
                  where: str = "") -> tuple[int, int | None, str | None]:
    """count, bit_xor and sum of the row digests of a relation with these column types (of its rows `where`)."""
    return _figures(con, f"(select {row_digest_sql(types)} as d from {relation} {where})")


def previous_fingerprints(path: Path) -> dict[str, tuple[str, str, tuple]]:
    """schema.table -> (fingerprint, gated_against, figures) recorded in the current snapshot ({} if none)."""
    if not path.exists():
        return {}
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            return {t: (f, g, (count, xor, total)) for t, f, g, count, xor, total in con.execute(
                f"select table_name, fingerprint, gated_against, row_count, digest_xor, digest_sum "
                f"from {FINGERPRINTS}").fetchall()}
    except duckdb.Error:  # an older snapshot without fingerprints or figures (or unreadable): built fresh
        return {}


def free_share(path: Path) -> float:
    with duckdb.connect(str(path), read_only=True) as con:
        total, free = con.execute("select total_blocks, free_blocks from pragma_database_size() "
                                  "where database_name = current_database()").fetchone()
    return free / total if total else 0.0


def present_schemas(con: duckdb.DuckDBPyConnection, catalog: str, wanted) -> list[str]:
    found = {r[0] for r in con.execute(
        "select schema_name from information_schema.schemata where catalog_name = ?", [catalog]).fetchall()}
    return [s for s in wanted if s in found]


def _copy_whole(con: duckdb.DuckDBPyConnection, qualified: str) -> None:
    con.execute(f'create schema if not exists "{qualified.split(".", 1)[0]}"')
    con.execute(f"create or replace table {_name(qualified)} as select * from {_name(qualified, SOURCE)}")


def _figures(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[int, int | None, str | None]:
    """count, bit_xor and sum of a relation's column of digests `d`."""
    return con.execute(f"select count(*), bit_xor(d), sum(d::hugeint)::varchar from {relation}").fetchone()


def hash_rows(con: duckdb.DuckDBPyConnection, relation: str, into: str,
              digest_types: list[tuple[str, str]] | None = None) -> tuple | None:
    """Table `into` (row_id, h[, d]): each row of a base table with DuckDB's hash (h: cheap, to match rows)
    and, given its column types, its digest (d); returns the digests' figures (None without)."""
    digest = f", {row_digest_sql(digest_types)} as d" if digest_types else ""
    con.execute(f"create or replace table {into} as select rowid as row_id, hash(_cv_row) as h{digest} "
                f"from {relation} _cv_row")
    return _figures(con, into) if digest_types else None


def _replace_rows(con: duckdb.DuckDBPyConnection, qualified: str, types: list[tuple[str, str]],
                  source_figures: tuple, kept_figures: tuple) -> tuple[int, int, str] | None:
    """Make the kept table's rows those of the warehouse's by replacing only the rows whose hash differs
    (the warehouse's rows are in {DELTA}.source_hashes): (deleted, inserted, relation of the inserted
    rows), or None (left unchanged) when that would touch too many rows or not give the warehouse's rows.
    Rows are matched by DuckDB's hash, which costs a fifth of a digest; the result is checked by digests:
    the kept table's figures (recorded when it was written) less the deleted rows' plus the inserted
    rows' must be the warehouse's. Two rows taken for the same by their hash (duplicates, or a hash
    shared by different texts) fail that check, and the table is copied whole."""
    kept = _name(qualified)
    if column_types(con, kept) != types:
        return None
    hash_rows(con, kept, f"{DELTA}.kept_hashes")
    con.execute(f"create or replace table {DELTA}.new as select row_id, h, d from {DELTA}.source_hashes "
                f"anti join {DELTA}.kept_hashes using (h)")
    con.execute(f"create or replace table {DELTA}.gone as select row_id from {DELTA}.kept_hashes "
                f"anti join {DELTA}.source_hashes using (h)")
    inserted, new_xor, new_sum = _figures(con, f"{DELTA}.new")
    deleted = con.execute(f"select count(*) from {DELTA}.gone").fetchone()[0]
    if deleted + inserted > ROW_LEVEL_MAX_SHARE * max(source_figures[0], 1):
        return None
    _, gone_xor, gone_sum = table_figures(con, kept, types, f"where rowid in (select row_id from {DELTA}.gone)")
    # what the table would hold, kept - gone + new, must be the warehouse's rows (as far as digests tell)
    count = kept_figures[0] - deleted + inserted
    xor = (kept_figures[1] or 0) ^ (gone_xor or 0) ^ (new_xor or 0)
    total = int(kept_figures[2] or 0) - int(gone_sum or 0) + int(new_sum or 0)
    if (count, xor if count else None, str(total) if count else None) != tuple(source_figures):
        return None
    rows = f'{DELTA}."inserted_rows_{qualified}"'
    con.execute(f"create or replace table {rows} as select * from {_name(qualified, SOURCE)} "
                f"where rowid in (select row_id from {DELTA}.new)")
    con.execute(f"delete from {kept} where rowid in (select row_id from {DELTA}.gone)")
    con.execute(f"insert into {kept} select * from {rows}")
    for scratch in ("kept_hashes", "new", "gone"):
        con.execute(f"drop table {DELTA}.{scratch}")
    return deleted, inserted, rows


def _reusable(target: Path, previous: dict) -> bool:
    if not previous:
        return False
    try:
        return free_share(target) <= MAX_FREE_SHARE
    except duckdb.Error:
        return False


def publish_snapshot(warehouse_path: Path | None = None, published: Path | None = None,
                     config: PublishConfig | None = None, known: gate.KnownValues | None = None,
                     run_id: str | None = None) -> SnapshotReport:
    started = time.perf_counter()
    config = config or load_config()
    known = known if known is not None else gate.load_known_values()
    gated_against = gate.known_fingerprint(known)
    source_path = Path(warehouse_path or settings.warehouse_path())
    if not source_path.exists():
        raise FileNotFoundError(f"warehouse {source_path} does not exist yet: run the pipeline first")
    target = snapshot_path(published, config)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    report = SnapshotReport(path=target, snapshot_id=run_id or uuid.uuid4().hex)
    previous = previous_fingerprints(target)
    report.reused_previous = _reusable(target, previous)
    try:
        if report.reused_previous:
            shutil.copyfile(target, tmp)  # a new file (default mode, writable): the previous one is untouched
        with duckdb.connect(str(tmp)) as con:
            warehouse.apply_settings(con)  # not DuckDB's default memory limit of 80 % of the RAM
            literal = str(source_path).replace("'", "''")
            con.execute(f"attach '{literal}' as {SOURCE} (read_only)")
            con.execute(f"attach ':memory:' as {DELTA}")
            report.schemas = present_schemas(con, SOURCE, config.serving.schemas)
            tables = list_tables(con, SOURCE, report.schemas)
            base_tables = {f"{schema}.{table}" for schema, table in con.execute(
                "select schema_name, table_name from duckdb_tables() where database_name = ?", [SOURCE]).fetchall()}
            kept = set(list_tables(con, current_catalog(con), [*config.serving.schemas, META_SCHEMA]))
            for stale in sorted(kept - set(tables)):  # gone from the warehouse, and last run's meta tables
                con.execute(f"drop table {_name(stale)}")
            for schema in {t.split(".", 1)[0] for t in kept} - {*report.schemas, META_SCHEMA}:
                con.execute(f'drop schema "{schema}" cascade')
            fingerprints: dict[str, str] = {}
            figures_of: dict[str, tuple] = {}
            gate_now: list[tuple[str, str]] = []  # (relation, location): new content, scanned in full
            unchanged: dict[str, set[str]] = {}  # what they were gated against -> tables kept as they were
            for table in tables:
                before = previous.get(table)
                types = column_types(con, _name(table, SOURCE))
                row_level = (report.reused_previous and table in kept and before is not None
                             and table in base_tables and con.execute(
                                 f"select count(*) from {_name(table, SOURCE)}").fetchone()[0] >= ROW_LEVEL_MIN_ROWS)
                if row_level:  # read once: for the fingerprint and, if changed, the rows to replace
                    figures = hash_rows(con, _name(table, SOURCE), f"{DELTA}.source_hashes", types)
                else:
                    figures = table_figures(con, _name(table, SOURCE), types)
                figures_of[table] = figures
                fingerprints[table] = fingerprint_of(types, *figures)
                if before is not None and before[0] == fingerprints[table]:
                    if table not in kept:  # a fresh build: the same rows, gated before
                        _copy_whole(con, table)
                        report.copied_tables.append(table)
                    unchanged.setdefault(before[1], set()).add(table)
                    continue
                replaced = _replace_rows(con, table, types, figures, before[2]) if row_level else None
                if replaced is None:
                    _copy_whole(con, table)
                    report.copied_tables.append(table)
                    gate_now.append((_name(table), table))
                else:
                    deleted, inserted, rows_relation = replaced
                    report.replaced_rows[table] = (deleted, inserted)
                    gate_now.append((rows_relation, table))
                    unchanged.setdefault(before[1], set()).add(table)  # its rows kept from the previous snapshot
                report.gated_tables.append(table)
            report.tables = {t: con.execute(f"select count(*) from {_name(t)}").fetchone()[0] for t in tables}
            con.execute(f"create schema if not exists {META_SCHEMA}")
            con.execute(f"create table {META_SCHEMA}.snapshot as select ? as snapshot_id, "
                        "cast(? as timestamptz) as created_at, ? as source_warehouse, ? as tables",
                        [report.snapshot_id, datetime.now(UTC), source_path.name,
                         json.dumps(report.tables, ensure_ascii=False)])
            con.execute(f"create table {FINGERPRINTS} (table_name varchar, fingerprint varchar, gated_against varchar, "
                        "row_count bigint, digest_xor ubigint, digest_sum varchar)")
            if fingerprints:
                con.execute(f"insert into {FINGERPRINTS} select unnest(?::varchar[]), unnest(?::varchar[]), ?, "
                            "unnest(?::bigint[]), unnest(?::ubigint[]), unnest(?::varchar[])",
                            [list(fingerprints), list(fingerprints.values()), gated_against,
                             *([figures_of[t][i] for t in fingerprints] for i in range(3))])
            gate_now += [(_name(t), t) for t in (f"{META_SCHEMA}.snapshot", FINGERPRINTS)]
            con.execute(f"detach {SOURCE}")
            gate.gate_relations(con, gate_now, known)
            for earlier, kept_tables in unchanged.items():
                plan = gate.regate_plan(earlier, known)
                relations = [(_name(t), t) for t in sorted(kept_tables)]
                if plan is None:
                    gate.gate_relations(con, relations, known)
                    report.gated_tables += [t for t in sorted(kept_tables) if t not in report.gated_tables]
                elif plan.empty:
                    report.unscanned_tables += [t for t in sorted(kept_tables) if t not in report.gated_tables]
                else:
                    gate.gate_relations(con, relations, plan, known_only=True)
                    report.rescanned_tables += sorted(kept_tables)
            con.execute(f"detach {DELTA}")
            con.execute("checkpoint")
        report.gated_tables.sort()
        report.unscanned_tables.sort()
        gate.record_known_values(known)
        tmp.chmod(0o444)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    report.bytes = target.stat().st_size
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def current_catalog(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("select current_database()").fetchone()[0]
