"""The BI snapshot: a read-only DuckDB copy of the marts and indicators (and the quality and text
schemas when present) at <published>/serving/warehouse.duckdb.

It is written to a temporary file in the same folder, scanned by the privacy gate, made read-only
(mode 0444) and swapped in with os.replace: a BI tool reading the previous snapshot keeps reading
it undisturbed (its open file is unaffected by the rename), the next connection sees the new one
whole, and the pipeline's warehouse is never held by a BI tool. Table `meta.snapshot` says which
run a snapshot comes from.

The copy is always whole (close to DuckDB's COPY FROM DATABASE speed); the privacy gate is not:
`meta.table_fingerprints` records per table a content fingerprint (count, bit_xor and sum of the
row hashes, and the column types) and what it was gated against. A table whose fingerprint equals
the previous snapshot's is scanned only as gate.regate_plan asks (for newly known values, or not
at all); changed tables and the meta tables are scanned in full.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from citizen_voice import settings
from citizen_voice.publish import files, gate
from citizen_voice.publish.config import PublishConfig, load_config

META_SCHEMA = "meta"
FINGERPRINTS = f"{META_SCHEMA}.table_fingerprints"


@dataclass
class SnapshotReport:
    path: Path
    snapshot_id: str
    schemas: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)  # schema.table -> rows
    bytes: int = 0
    gated_tables: list[str] = field(default_factory=list)  # scanned in full
    rescanned_tables: list[str] = field(default_factory=list)  # unchanged: scanned for newly known values
    unscanned_tables: list[str] = field(default_factory=list)  # unchanged, gated before against the same values
    seconds: float = 0.0


def snapshot_path(published: Path | None = None, config: PublishConfig | None = None) -> Path:
    config = config or load_config()
    return Path(published or settings.published_dir()) / config.serving.snapshot_file


def copy_schemas(con: duckdb.DuckDBPyConnection, source: str, schemas: list[str]) -> dict[str, int]:
    """Copy every table and view of `schemas` from attached catalog `source` as tables."""
    counts = {}
    for schema in schemas:
        con.execute(f'create schema if not exists "{schema}"')
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_catalog = ? and table_schema = ? "
            "order by 1", [source, schema]).fetchall()]
        for table in tables:
            con.execute(f'create table "{schema}"."{table}" as select * from "{source}"."{schema}"."{table}"')
            counts[f"{schema}.{table}"] = con.execute(f'select count(*) from "{schema}"."{table}"').fetchall()[0][0]
    return counts


def table_fingerprints(con: duckdb.DuckDBPyConnection, tables: list[str]) -> dict[str, str]:
    """schema.table -> fingerprint of its rows (order-independent) and column types."""
    found = {}
    for qualified in tables:
        schema, table = qualified.split(".", 1)
        relation = f'"{schema}"."{table}"'
        types = con.execute(f"select column_name, column_type from (describe {relation})").fetchall()
        count, xor, total = con.execute(
            f"select count(*), bit_xor(hash(_cv_row)), sum(hash(_cv_row)::hugeint)::varchar "
            f"from {relation} _cv_row").fetchone()
        found[qualified] = files.content_fingerprint(json.dumps(types), count, xor, total)
    return found


def previous_fingerprints(path: Path) -> dict[str, tuple[str, str]]:
    """schema.table -> (fingerprint, gated_against) recorded in the current snapshot ({} if none)."""
    if not path.exists():
        return {}
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            return {t: (f, g) for t, f, g in con.execute(
                f"select table_name, fingerprint, gated_against from {FINGERPRINTS}").fetchall()}
    except duckdb.Error:  # an older snapshot without fingerprints (or unreadable): gate everything
        return {}


def present_schemas(con: duckdb.DuckDBPyConnection, catalog: str, wanted) -> list[str]:
    found = {r[0] for r in con.execute(
        "select schema_name from information_schema.schemata where catalog_name = ?", [catalog]).fetchall()}
    return [s for s in wanted if s in found]


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
    try:
        with duckdb.connect(str(tmp)) as con:
            literal = str(source_path).replace("'", "''")
            con.execute(f"attach '{literal}' as source (read_only)")
            report.schemas = present_schemas(con, "source", config.serving.schemas)
            report.tables = copy_schemas(con, "source", report.schemas)
            con.execute("detach source")
            fingerprints = table_fingerprints(con, list(report.tables))
            con.execute(f"create schema {META_SCHEMA}")
            con.execute(f"create table {META_SCHEMA}.snapshot as select ? as snapshot_id, "
                        "cast(? as timestamptz) as created_at, ? as source_warehouse, ? as tables",
                        [report.snapshot_id, datetime.now(UTC), source_path.name,
                         json.dumps(report.tables, ensure_ascii=False)])
            con.execute(f"create table {FINGERPRINTS} (table_name varchar, fingerprint varchar, gated_against varchar)")
            if fingerprints:
                con.execute(f"insert into {FINGERPRINTS} select unnest(?::varchar[]), unnest(?::varchar[]), ?",
                            [list(fingerprints), list(fingerprints.values()), gated_against])
            con.execute("checkpoint")
        unchanged: dict[str, set[str]] = {}  # what they were gated against -> tables
        for table, fingerprint in fingerprints.items():
            before = previous.get(table)
            if before is not None and before[0] == fingerprint:
                unchanged.setdefault(before[1], set()).add(table)
            else:
                report.gated_tables.append(table)
        for earlier, tables in unchanged.items():
            plan = gate.regate_plan(earlier, known)
            if plan is None:
                report.gated_tables += sorted(tables)
            elif plan.empty:
                report.unscanned_tables += sorted(tables)
            else:
                gate.gate_duckdb(tmp, report.schemas, plan, use_manifest=False, only=tables, known_only=True)
                report.rescanned_tables += sorted(tables)
        report.gated_tables.sort()
        gate.gate_duckdb(tmp, [*report.schemas, META_SCHEMA], known, use_manifest=False,
                         only={*report.gated_tables, f"{META_SCHEMA}.snapshot", FINGERPRINTS})
        gate.record_known_values(known)
        tmp.chmod(0o444)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    report.bytes = target.stat().st_size
    report.seconds = round(time.perf_counter() - started, 3)
    return report
