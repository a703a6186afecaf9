"""Records a department system sends again unchanged are not loaded again.

A cursor's lookback (3 days by default) re-reads every record of its window at each load, so that a
record committed late is not lost. Loaded again, a record that did not change would only get a new
load id, and with it count as new downstream: its order rebuilt by the incremental models, its row
validated again by the quarantine (at 1M a day's hotline load re-read 95k records for 32k new ones).

After a load, the digest of each record as it was received (before the boundary) is kept per source,
table and primary key, with the id of the load that wrote it (`ops.received_digests`, the last KEEP_DAYS
of loads). The next load drops a received record whose digest is the one kept for its key, as long as
the raw table still holds that key from that load (a rebuilt or reloaded table has other load ids, so
nothing is dropped against it). A dropped record counts as received and loaded: the warehouse holds it,
identical. A key that comes twice in one batch, a record without its key and a record the boundary
quarantined are never dropped. The digests are written after the load succeeded: a crash in between
only means the next load loads those records again, which the merge on the key absorbs.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from citizen_voice.warehouse import connect as warehouse_connection
from citizen_voice.warehouse import has_table, transaction
from ingestion.registry import SourceEntry, TableSpec

TABLE = "ops.received_digests"
DDL = (f"create table if not exists {TABLE} (source varchar, table_name varchar, record_key varchar, "
       "digest ubigint, load_id varchar, recorded_at timestamp)")
KEEP_DAYS = 14  # longer than any lookback: a digest older than this is not needed to drop a re-read record
KEY_SEPARATOR = "\x1f"


def _key_columns(spec: TableSpec) -> list[str]:
    key = spec.primary_key
    return [key] if isinstance(key, str) else list(key or [])


def _key_sql(columns: list[str], alias: str = "") -> str:
    """The key as one text, null when a key column is null (such a record is never dropped)."""
    prefix = f"{alias}." if alias else ""
    parts = [f'cast({prefix}"{c}" as varchar)' for c in columns]
    return (f"case when {' or '.join(f'{p} is null' for p in parts)} then null "
            f"else concat_ws('{KEY_SEPARATOR}', {', '.join(parts)}) end")


def keys_and_digests(table: pa.Table, spec: TableSpec) -> pa.Table:
    """Per record of `table` (in its order): its key and the digest of the whole record as received."""
    columns = _key_columns(spec)
    if not columns or not set(columns) <= set(table.column_names) or not table.num_rows:
        return pa.table({"record_key": pa.nulls(table.num_rows, pa.string()),
                         "digest": pa.nulls(table.num_rows, pa.uint64())})
    with duckdb.connect() as con:
        con.register("incoming", table)
        return con.sql(f"select {_key_sql(columns)} as record_key, hash(*columns(*)) as digest "
                       "from incoming").to_arrow_table()


class UnchangedRecords:
    """The digests kept for one source (read once, before its load opens the warehouse), the records
    dropped as unchanged, and the digests of the records loaded now (written by `record`)."""

    def __init__(self, entry: SourceEntry, warehouse: Path):
        self.entry, self.warehouse = entry, warehouse
        self.known: dict[str, dict[str, int]] = {spec.name: {} for spec in entry.tables}
        self.loaded: dict[str, list[pa.Table]] = {}
        if warehouse.exists():
            with warehouse_connection(warehouse) as con:
                self.known.update(self._read(con))

    def _read(self, con) -> dict[str, dict[str, int]]:
        if not has_table(con, *TABLE.split(".")):
            return {}
        known = {}
        for spec in self.entry.tables:
            columns = _key_columns(spec)
            if not columns or not has_table(con, self.entry.dataset, spec.name):
                continue
            raw_columns = {r[0] for r in con.execute(f'describe "{self.entry.dataset}"."{spec.name}"').fetchall()}
            if not set(columns) <= raw_columns:
                continue
            # only what the raw table still holds from the load that wrote it
            rows = con.execute(
                f"select d.record_key, d.digest from {TABLE} as d join "
                f'(select {_key_sql(columns, "r")} as record_key, cast(r._dlt_load_id as varchar) as load_id '
                f'from "{self.entry.dataset}"."{spec.name}" as r) as held '
                "on held.record_key = d.record_key and held.load_id = d.load_id "
                "where d.source = ? and d.table_name = ?", [self.entry.name, spec.name]).fetchall()
            known[spec.name] = dict(rows)
        return known

    def split(self, table_name: str, table: pa.Table, spec: TableSpec) -> tuple[pa.Table, pa.Table, int]:
        """(the records to load, their keys and digests, how many were dropped as unchanged)."""
        digests = keys_and_digests(table, spec)
        known = self.known.get(table_name) or {}
        if not known:
            return table, digests, 0
        keys = digests.column("record_key").to_pylist()
        counted: dict[str, int] = {}
        for key in keys:
            counted[key] = counted.get(key, 0) + 1
        unchanged = [key is not None and counted[key] == 1 and known.get(key) == digest
                     for key, digest in zip(keys, digests.column("digest").to_pylist(), strict=True)]
        if not any(unchanged):
            return table, digests, 0
        kept = pc.invert(pa.array(unchanged, pa.bool_()))
        return table.filter(kept), digests.filter(kept), sum(unchanged)

    def loaded_now(self, table_name: str, digests: pa.Table) -> None:
        """The keys and digests of records of `table_name` the boundary let through in this load."""
        self.loaded.setdefault(table_name, []).append(digests.filter(pc.is_valid(digests.column("record_key"))))

    def record(self, con, load_id: str | None) -> int:
        """After the load succeeded: keep the digests of what it loaded (the last one per key), forget
        those older than KEEP_DAYS. Returns how many were kept now."""
        con.execute("create schema if not exists ops")
        con.execute(DDL)
        parts = [pa.concat_tables(tables).append_column("table_name", pa.array([name] * sum(
            t.num_rows for t in tables), pa.string())) for name, tables in self.loaded.items() if tables]
        rows = pa.concat_tables(parts) if parts else None
        with transaction(con):
            if rows is not None and rows.num_rows and load_id is not None:
                con.register("loaded_digests", rows)
                try:
                    con.execute(f"delete from {TABLE} where source = ? and (table_name, record_key) in "
                                "(select table_name, record_key from loaded_digests)", [self.entry.name])
                    # a key loaded in two versions at once: which one the merge kept is not known, keep none
                    con.execute(f"insert into {TABLE} select ?, table_name, record_key, any_value(digest), ?, "
                                "current_localtimestamp() from loaded_digests group by table_name, record_key "
                                "having count(distinct digest) = 1", [self.entry.name, load_id])
                finally:
                    con.unregister("loaded_digests")
            con.execute(f"delete from {TABLE} where source = ? and recorded_at < current_localtimestamp() - "
                        f"interval {KEEP_DAYS} day", [self.entry.name])
        self.loaded = {}
        return rows.num_rows if rows is not None and load_id is not None else 0
