"""Records a department system sends again unchanged are not loaded again.

A cursor's lookback (3 days by default) re-reads every record of its window at each load, so that a
record committed late is not lost. Loaded again, a record that did not change would only get a new
load id, and with it count as new downstream: its order rebuilt by the incremental models, its row
validated again by the quarantine (at 1M a day's hotline load re-read 95k records for 32k new ones).

After a load, the digest of each record it received (as received, before the boundary) is kept per
source, table and primary key with the id of the load that wrote the record (`ops.received_digests`).
Only the latest load's are kept: a record the next lookback re-reads unchanged has the same cursor
value, so it was inside this load's window too. The next load drops a received record whose digest is
the one kept for its key, as long as the raw table still holds that key from that load (a rebuilt or
reloaded table has other load ids, so nothing is dropped against it). A dropped record counts as
received and loaded: the warehouse holds it, identical. A key that comes twice in one batch, a record
without its key and a record the boundary quarantined are never dropped, and a key one load received
in two versions keeps no digest (which one dlt's merge kept is not known). Of a table a load received
more of (a first load, a backfill), the last MAX_DIGESTS records received are kept: the connectors read
in cursor order, so these are the newest, which the next lookback re-reads (were they not, the next
load would only write more again). The digests are written after the load succeeded: a crash in
between only means the next load writes those records again, which the merge on the key absorbs.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from citizen_voice.digest import columns_of, row_digest_sql
from citizen_voice.warehouse import connect as warehouse_connection
from citizen_voice.warehouse import has_table, transaction
from ingestion.registry import SourceEntry, TableSpec

TABLE = "ops.received_digests"
DDL = (f"create table if not exists {TABLE} (source varchar, table_name varchar, record_key varchar, "
       "digest ubigint, load_id varchar)")
# per table (a daily window at 1M: 71k hotline events), held in DuckDB's memory during a load and the next
MAX_DIGESTS = 500_000
REREAD_KINDS = ("rest_api", "open311", "sql_database")  # a file drop is read once: nothing comes again
KEY_SEPARATOR = "\x1f"


def _key_sql(columns: list[str], alias: str = "") -> str:
    """The key as one text, null when a key column is null (such a record is never dropped)."""
    prefix = f"{alias}." if alias else ""
    parts = [f'cast({prefix}"{c}" as varchar)' for c in columns]
    return (f"case when {' or '.join(f'{p} is null' for p in parts)} then null "
            f"else concat_ws('{KEY_SEPARATOR}', {', '.join(parts)}) end")


def keys_and_digests(table: pa.Table, spec: TableSpec, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """Per record of `table` (in its order): its key, the digest of the whole record as received and a
    hash of the key (MD5's lower 64 bits: DuckDB's hash gives 0.8 % of order numbers another's). `con`: an
    in-memory DuckDB connection to reuse (a new one costs 3-40 ms a batch)."""
    if not spec.primary_key or not set(spec.primary_key) <= set(table.column_names) or not table.num_rows:
        return pa.table({"record_key": pa.nulls(table.num_rows, pa.string()),
                         "digest": pa.nulls(table.num_rows, pa.uint64()),
                         "key_hash": pa.nulls(table.num_rows, pa.uint64())})
    if con is None:
        with duckdb.connect() as own:
            return keys_and_digests(table, spec, own)
    con.register("incoming", table)
    try:
        digest = row_digest_sql(columns_of(con, "select * from incoming"))
        return con.sql(f"select record_key, digest, md5_number_lower(record_key) as key_hash from (select "
                       f"{_key_sql(spec.primary_key)} as record_key, {digest} as digest from incoming)"
                       ).to_arrow_table()
    finally:
        con.unregister("incoming")


class KnownDigests:
    """One table's kept digests as arrays sorted by the hash of the key: a batch is looked up by binary
    search, in microseconds (a join in DuckDB took 5 ms a batch against 500k digests: 1.6 s of the 1M
    daily load's 300 batches). Hashes kept for two keys are left out: those keys are never dropped."""

    def __init__(self, key_hashes: np.ndarray, digests: np.ndarray, load_ids: pa.Array):
        self.key_hashes, self.digests, self.load_ids = key_hashes, digests, load_ids

    @classmethod
    def of(cls, known: pa.Table) -> KnownDigests:
        key_hashes = known.column("key_hash").to_numpy()
        order = np.argsort(key_hashes, kind="stable")
        key_hashes = key_hashes[order]
        single = np.ones(len(key_hashes), bool)
        repeated = key_hashes[1:] == key_hashes[:-1]
        single[1:] &= ~repeated
        single[:-1] &= ~repeated
        order = order[single]
        return cls(key_hashes[single], known.column("digest").to_numpy()[order],
                   known.column("load_id").take(pa.array(order)).combine_chunks())

    def unchanged(self, batch: pa.Table) -> tuple[np.ndarray, pa.Array]:
        """Per record of `batch` (keys_and_digests): whether its digest is the one kept for its key and
        its key is once in the batch; and the load id kept for its key (null when none)."""
        keyed = pc.is_valid(batch.column("record_key")).to_numpy(zero_copy_only=False)
        key_hashes = batch.column("key_hash").fill_null(0).to_numpy()
        digests = batch.column("digest").fill_null(0).to_numpy()
        at = np.minimum(np.searchsorted(self.key_hashes, key_hashes), max(len(self.key_hashes) - 1, 0))
        found = keyed & (self.key_hashes[at] == key_hashes) if len(self.key_hashes) else np.zeros_like(keyed)
        _, inverse, copies = np.unique(np.where(keyed, key_hashes, 0), return_inverse=True, return_counts=True)
        unchanged = found & (self.digests[at] == digests) & (copies[inverse] == 1)
        load_ids = self.load_ids.take(pa.array(at)) if len(self.key_hashes) else pa.nulls(len(at), pa.string())
        return unchanged, pc.if_else(pa.array(found), load_ids, pa.scalar(None, pa.string()))


class UnchangedRecords:
    """The digests kept for one source (read before its load opens the warehouse, into arrays per table:
    no Python object per record), the records dropped as unchanged, and what to keep after the load
    (`record`)."""

    def __init__(self, entry: SourceEntry, warehouse: Path):
        self.entry = entry
        self.received: dict[str, list[pa.Table]] = {}  # per table, the last: key, digest, key hash, load id (None: this load's)
        self.trimmed: dict[str, list[np.ndarray]] = {}  # per table: key hashes of records no longer among the last
        self.scratch = duckdb.connect()  # computes each batch's keys and digests
        self.known: dict[str, KnownDigests] = {}
        if warehouse.exists():
            with warehouse_connection(warehouse) as con:
                self._read(con)

    def _read(self, con) -> None:
        if not has_table(con, *TABLE.split(".")):
            return
        for spec in self.entry.tables:
            if not spec.primary_key or not has_table(con, self.entry.dataset, spec.name):
                continue
            raw_columns = {r[0] for r in con.execute(f'describe "{self.entry.dataset}"."{spec.name}"').fetchall()}
            if not set(spec.primary_key) <= raw_columns:
                continue
            # only what the raw table still holds from the load that wrote it
            known = con.sql(
                f"select md5_number_lower(d.record_key) as key_hash, d.digest, d.load_id from {TABLE} as d join "
                f"(select {_key_sql(spec.primary_key, 'r')} as record_key, cast(r._dlt_load_id as varchar) as load_id "
                f'from "{self.entry.dataset}"."{spec.name}" as r) as held '
                "on held.record_key = d.record_key and held.load_id = d.load_id "
                "where d.source = $source and d.table_name = $table",
                params={"source": self.entry.name, "table": spec.name}).to_arrow_table()
            if known.num_rows:
                self.known[spec.name] = KnownDigests.of(known)

    def split(self, table_name: str, table: pa.Table, spec: TableSpec) -> tuple[pa.Table, pa.Table, int]:
        """(the records to load, their keys and digests, how many were dropped as unchanged)."""
        digests = keys_and_digests(table, spec, self.scratch)
        known = self.known.get(table_name)
        if known is None or not table.num_rows:
            return table, digests, 0
        unchanged, load_ids = known.unchanged(digests)
        dropped = int(unchanged.sum())
        if not dropped:
            return table, digests, 0
        mask = pa.array(unchanged)
        self._receive(table_name, digests.filter(mask).append_column("load_id", load_ids.filter(mask)))
        kept = pa.array(~unchanged)
        return table.filter(kept), digests.filter(kept), dropped

    def loaded_now(self, table_name: str, digests: pa.Table) -> None:
        """The keys and digests of records of `table_name` the boundary let through in this load."""
        keyed = digests.filter(pc.is_valid(digests.column("record_key")))
        self._receive(table_name, keyed.append_column("load_id", pa.nulls(keyed.num_rows, pa.string())))

    def _receive(self, table_name: str, part: pa.Table) -> None:
        """Add to what the table received, keeping the last MAX_DIGESTS (trimmed now and then)."""
        parts = self.received.setdefault(table_name, [])
        parts.append(part)
        if sum(p.num_rows for p in parts) > 2 * MAX_DIGESTS:
            self.received[table_name] = [self._last(table_name, parts)]

    def _last(self, table_name: str, parts: list[pa.Table]) -> pa.Table:
        received = pa.concat_tables(parts, promote_options="permissive")
        cut = max(0, received.num_rows - MAX_DIGESTS)
        if cut:
            self.trimmed.setdefault(table_name, []).append(
                received.column("key_hash").slice(0, cut).to_numpy(zero_copy_only=False).astype(np.uint64))
        return received.slice(cut).combine_chunks()

    def record(self, con, load_id: str | None) -> None:
        """After the load succeeded: keep the digests of what it received (in place of the last load's)."""
        con.execute("create schema if not exists ops")
        con.execute(DDL)
        parts = []
        for name, tables in self.received.items():
            received = self._last(name, tables)
            # a key also among the records trimmed may have come in another version: keep none for it
            trimmed = np.concatenate(self.trimmed.get(name) or [np.empty(0, np.uint64)])
            received = received.filter(pc.invert(pc.is_in(received.column("key_hash"), pa.array(trimmed))))
            parts.append(received.drop_columns(["key_hash"]).append_column(
                "table_name", pa.array([name] * received.num_rows, pa.string())))
        rows = pa.concat_tables(parts, promote_options="permissive") if parts else None
        with transaction(con):
            con.execute(f"delete from {TABLE} where source = ?", [self.entry.name])
            if rows is not None and rows.num_rows:
                con.register("received_digests", rows)
                try:
                    # a key written now (load id null) is this load's; one written in two versions at once
                    # keeps none (which one the merge kept is not known); one only dropped keeps its load
                    con.execute(
                        f"""insert into {TABLE}
                        select ?, table_name, record_key,
                               coalesce(any_value(digest) filter (where load_id is null), any_value(digest)),
                               case when count(*) filter (where load_id is null) > 0 then ? else any_value(load_id) end
                        from received_digests group by table_name, record_key
                        having count(distinct digest) filter (where load_id is null) = 1
                            or (count(*) filter (where load_id is null) = 0
                                and count(distinct digest) = 1 and count(distinct load_id) = 1)""",
                        [self.entry.name, load_id])
                finally:
                    con.unregister("received_digests")
        self.received, self.trimmed = {}, {}
        self.scratch.close()
