"""Reading and writing the text tables in bounded batches.

The text steps handle the pending orders `TEXT_BATCH` at a time, so their memory does not grow with
the history: rows are read through a record-batch reader on a cursor of their own (the caller's
connection stays free for the writes), and each batch is written in its own transaction. A crash
leaves the finished batches written; the steps are incremental (by text_hash and version), so the
next run continues with the rest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from citizen_voice.warehouse import transaction

TEXT_BATCH = 50_000  # orders per batch: memory per batch is bounded, the per-batch overhead negligible


def read_batches(con, query: str, params: list | None = None, size: int | None = None) -> Iterator[pa.RecordBatch]:
    """The rows of `query` as record batches of at most `size` (default TEXT_BATCH) rows, read on a
    cursor of their own so that `con` can write meanwhile (the reader keeps its snapshot)."""
    cursor = con.cursor()
    try:
        yield from cursor.sql(query, params=params).to_arrow_reader(size or TEXT_BATCH)
    finally:
        cursor.close()


def replace_rows(con, table: str, rows: pa.Table | pa.RecordBatch | str, key: str = "order_no") -> int:
    """In one transaction: delete the rows of `table` whose `key` is among `rows`' keys and insert
    `rows` (an Arrow table or batch, or the name of a relation; columns in the table's order)."""
    relation = rows if isinstance(rows, str) else "replaced_rows_batch"
    try:
        with transaction(con):
            if not isinstance(rows, str):
                con.register(relation, rows)
            con.execute(f"delete from {table} where {key} in (select {key} from {relation})")
            con.execute(f"insert into {table} select * from {relation}")
    finally:
        if not isinstance(rows, str):
            con.unregister(relation)
    return len(rows) if not isinstance(rows, str) else con.execute(f"select count(*) from {relation}").fetchall()[0][0]


def delete_orphans(con, table: str, key_source: str, key: str = "order_no") -> int:
    """Delete the rows of `table` whose `key` is no longer in `key_source`; returns how many."""
    return con.execute(f"delete from {table} where {key} not in (select {key} from {key_source})").fetchall()[0][0]
