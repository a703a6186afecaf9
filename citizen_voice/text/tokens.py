"""Tokens per work order, segmented once: `text.order_tokens`.

A text is (re-)segmented only when it is new, its `text_hash` changed (marts.fct_work_order_texts)
or the vocabulary's version changed; orders that left the facts lose their tokens. A daily run
therefore segments only that day's new and edited texts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pyarrow as pa

from citizen_voice.text import store
from citizen_voice.text.segment import (
    PARALLEL_MIN_TEXTS,
    SegmentationPool,
    Segmenter,
    Vocabulary,
    warehouse_terms,
)

SCHEMA = "text"
STATE_SCHEMA = "text_state"  # what the incremental steps remember between runs: neither served nor published
TEXTS = "marts.fct_work_order_texts"
TABLE = f"{SCHEMA}.order_tokens"
CHUNK_SIZE = 5_000  # texts per task of a segmentation worker
DDL = f"""
create table if not exists {TABLE} (
    order_no varchar not null,          -- 工单编号 (one row per order in {TEXTS})
    text_hash varchar not null,         -- the text's hash when it was segmented
    vocabulary_version varchar not null,
    tokens varchar not null,            -- space-separated tokens of title + content
    token_count integer not null,
    segmented_at timestamp not null
)"""


def ensure_schema(con) -> None:
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(f"create schema if not exists {STATE_SCHEMA}")
    con.execute(DDL)


def warehouse_vocabulary(con, hmm: bool = False) -> Vocabulary:
    return Vocabulary.build(warehouse_terms(con), hmm=hmm)


def document_text(title: str | None, content: str | None) -> str:
    """What is segmented: the title, then the content (the title often names the matter most plainly)."""
    return f"{title or ''}。{content or ''}"


def update_order_tokens(con, vocabulary: Vocabulary | None = None, workers: int = 1,
                        segmenter: Segmenter | None = None) -> dict:
    """Segment the texts that are new or changed since their last segmentation, `store.TEXT_BATCH`
    orders at a time (each batch its own transaction); drop orphans."""
    ensure_schema(con)
    vocabulary = vocabulary or (segmenter.vocabulary if segmenter else warehouse_vocabulary(con))
    pending_sql = f"""
        select t.order_no, t.text_hash, t.title, t.content
        from {TEXTS} as t
        left join {TABLE} as k
            on k.order_no = t.order_no and k.text_hash = t.text_hash and k.vocabulary_version = ?
        where k.order_no is null"""
    params = [vocabulary.version]
    pending = con.execute(f"select count(*) from ({pending_sql})", params).fetchall()[0][0]
    # one decision for the whole run: a pool pays off for many texts, whatever the batch size
    parallel = workers if pending >= PARALLEL_MIN_TEXTS else 1
    started = time.perf_counter()
    write_seconds = 0.0
    segmented = 0
    with SegmentationPool(vocabulary, parallel, segmenter=segmenter) as pool:
        for batch, joined in _segmented_batches(pool, store.read_batches(con, pending_sql, params)):
            written = time.perf_counter()
            store.replace_rows(con, TABLE, pa.table({
                "order_no": batch["order_no"],
                "text_hash": batch["text_hash"],
                "vocabulary_version": pa.array([vocabulary.version] * len(joined), pa.string()),
                "tokens": pa.array(joined, pa.string()),
                "token_count": pa.array([len(j.split()) if j else 0 for j in joined], pa.int32()),
                "segmented_at": pa.array([datetime.now().replace(microsecond=0)] * len(joined), pa.timestamp("us")),
            }))
            segmented += len(joined)
            write_seconds += time.perf_counter() - written
    seconds = time.perf_counter() - started - write_seconds
    removed = store.delete_orphans(con, TABLE, TEXTS)
    total = con.execute(f"select count(*) from {TABLE}").fetchall()[0][0]
    return {"segmented": segmented, "removed": removed, "total": total, "vocabulary_version": vocabulary.version,
            "vocabulary_terms": len(vocabulary.terms), "segment_seconds": round(seconds, 3),
            "docs_per_second": round(segmented / seconds, 1) if segmented and seconds > 0 else None}


def _segmented_batches(pool: SegmentationPool, batches: Iterator[pa.RecordBatch]
                       ) -> Iterator[tuple[pa.RecordBatch, list[str]]]:
    """(batch, its texts' tokens) for each batch, the texts cut in chunks by the pool; the pool reads
    ahead into the next batch while the caller writes this one."""
    chunk_size = CHUNK_SIZE
    def chunks():
        for batch in batches:
            texts = [document_text(title, content) for title, content in
                     zip(batch["title"].to_pylist(), batch["content"].to_pylist(), strict=True)]
            for start in range(0, len(texts), chunk_size):
                yield (batch, start + chunk_size >= len(texts)), texts[start:start + chunk_size]

    joined: list[str] = []
    for (batch, last), tokens in pool.segment(chunks()):
        joined += tokens
        if last:
            yield batch, joined
            joined = []
