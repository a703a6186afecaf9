"""Tokens per work order, segmented once: `text.order_tokens`.

A text is (re-)segmented only when it is new, its `text_hash` changed (marts.fct_work_order_texts)
or the vocabulary's version changed; orders that left the facts lose their tokens. A daily run
therefore segments only that day's new and edited texts.
"""

from __future__ import annotations

import time
from datetime import datetime

import pyarrow as pa

from citizen_voice.text.segment import Segmenter, Vocabulary, segment_texts, warehouse_terms

SCHEMA = "text"
TEXTS = "marts.fct_work_order_texts"
TABLE = f"{SCHEMA}.order_tokens"
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
    con.execute(DDL)


def warehouse_vocabulary(con, hmm: bool = False) -> Vocabulary:
    return Vocabulary.build(warehouse_terms(con), hmm=hmm)


def document_text(title: str | None, content: str | None) -> str:
    """What is segmented: the title, then the content (the title often names the matter most plainly)."""
    return f"{title or ''}。{content or ''}"


def update_order_tokens(con, vocabulary: Vocabulary | None = None, workers: int = 1,
                        segmenter: Segmenter | None = None) -> dict:
    """Segment the texts that are new or changed since their last segmentation; drop orphans."""
    ensure_schema(con)
    vocabulary = vocabulary or (segmenter.vocabulary if segmenter else warehouse_vocabulary(con))
    pending = con.sql(f"""
        select t.order_no, t.text_hash, t.title, t.content
        from {TEXTS} as t
        left join {TABLE} as k
            on k.order_no = t.order_no and k.text_hash = t.text_hash and k.vocabulary_version = ?
        where k.order_no is null
        order by t.order_no""", params=[vocabulary.version]).to_arrow_table()
    started = time.perf_counter()
    texts = [document_text(title, content) for title, content in
             zip(pending["title"].to_pylist(), pending["content"].to_pylist(), strict=True)]
    joined = segment_texts(texts, vocabulary, workers=workers, segmenter=segmenter)
    seconds = time.perf_counter() - started
    batch = pa.table({
        "order_no": pending["order_no"],
        "text_hash": pending["text_hash"],
        "vocabulary_version": pa.array([vocabulary.version] * len(joined), pa.string()),
        "tokens": pa.array(joined, pa.string()),
        "token_count": pa.array([len(j.split()) if j else 0 for j in joined], pa.int32()),
        "segmented_at": pa.array([datetime.now().replace(microsecond=0)] * len(joined), pa.timestamp("us")),
    })
    con.execute("begin")
    try:
        con.register("tokens_batch", batch)
        con.execute(f"delete from {TABLE} where order_no in (select order_no from tokens_batch)")
        con.execute(f"insert into {TABLE} select * from tokens_batch")
        con.unregister("tokens_batch")
        removed = con.execute(f"delete from {TABLE} where order_no not in (select order_no from {TEXTS})").fetchall()[0][0]
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    total = con.execute(f"select count(*) from {TABLE}").fetchall()[0][0]
    return {"segmented": len(joined), "removed": removed, "total": total, "vocabulary_version": vocabulary.version,
            "vocabulary_terms": len(vocabulary.terms), "segment_seconds": round(seconds, 3),
            "docs_per_second": round(len(joined) / seconds, 1) if joined and seconds > 0 else None}
