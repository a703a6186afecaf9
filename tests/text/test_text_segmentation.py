"""Segmentation: exact jieba output with the domain vocabulary, tokens stored once, increments only."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import duckdb
import jieba

from citizen_voice.text import tokens
from citizen_voice.text.segment import (
    STOPWORDS_FILE,
    SegmentationPool,
    Segmenter,
    Vocabulary,
    _is_word,
    normalize,
    read_word_list,
)


def test_cached_segmenter_gives_exactly_what_jieba_gives():
    vocabulary = Vocabulary.build(["望海街道", "港湾社区"])
    segmenter = Segmenter(vocabulary)
    texts = ["望海街道港湾社区的电梯故障，已经三天了！请尽快处理。", "ＡＢＣ小区12345热线：路灯不亮 138****5678",
             "港湾社区电梯故障，电梯故障。", "", "无效来电"]
    for text in texts * 2:  # the second pass is served from the cache
        expected = [t for t in segmenter.tokenizer.lcut(normalize(text), HMM=False)
                    if t not in vocabulary.stopwords and _is_word(t)]
        assert segmenter.tokens(text) == expected
    assert segmenter.cache_hits > 0
    assert "望海街道" in segmenter.tokens("望海街道的路灯坏了")
    # the plain jieba dictionary splits the place name the vocabulary keeps whole
    assert "望海街道" not in jieba.lcut("望海街道的路灯坏了", HMM=False)


def test_vocabulary_comes_from_the_warehouse_and_stopwords_from_the_package(text_city):
    with duckdb.connect(str(text_city["warehouse"]), read_only=True) as con:
        vocabulary = tokens.warehouse_vocabulary(con)
        streets = [r[0] for r in con.execute("select street_name from marts.dim_street").fetchall()]
        departments = [r[0] for r in con.execute("select department_name from marts.dim_department").fetchall()]
        stored = con.execute(f"select count(*), count(distinct order_no), min(vocabulary_version), "
                             f"max(vocabulary_version) from {tokens.TABLE}").fetchall()[0]
        facts = con.execute("select count(*) from marts.fct_work_orders").fetchall()[0][0]
    assert set(streets) <= set(vocabulary.terms) and set(departments) <= set(vocabulary.terms)
    assert set(read_word_list(STOPWORDS_FILE)) <= vocabulary.stopwords
    assert stored[0] == stored[1] == facts  # one row per order of the facts
    assert stored[2] == stored[3] == vocabulary.version


def test_a_daily_increment_segments_only_new_and_changed_texts(warehouse_copy):
    with duckdb.connect(str(warehouse_copy)) as con:
        last_day = con.execute(f"select max(received_date) from {tokens.TEXTS}").fetchall()[0][0]
        new = con.execute(f"select count(*) from {tokens.TEXTS} where received_date = ?", [last_day]).fetchall()[0][0]
        # the warehouse as it was the day before: the last day's orders not yet segmented
        con.execute(f"delete from {tokens.TABLE} where order_no in "
                    f"(select order_no from {tokens.TEXTS} where received_date = ?)", [last_day])
        # and one older order whose text was edited since
        edited = con.execute(f"select min(order_no) from {tokens.TEXTS}").fetchall()[0][0]
        con.execute(f"update {tokens.TEXTS} set content = content || '又漏水了', text_hash = md5(text_hash) "
                    f"where order_no = ?", [edited])
        figures = tokens.update_order_tokens(con)
        assert new > 0
        assert figures["segmented"] == new + 1
        assert "漏水" in con.execute(f"select tokens from {tokens.TABLE} where order_no = ?", [edited]).fetchall()[0][0]
        assert tokens.update_order_tokens(con)["segmented"] == 0  # nothing new: nothing segmented
        # an order that left the facts loses its tokens
        con.execute(f"delete from {tokens.TEXTS} where order_no = ?", [edited])
        assert tokens.update_order_tokens(con)["removed"] == 1


def _ignored_signals(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)


def test_pool_workers_can_be_stopped_even_if_their_parent_ignores_sigterm():
    """Pool.terminate() stops workers with SIGTERM: a worker that inherited it ignored (some launchers start
    background processes so) kept CI waiting forever when it sat on the pool's queue lock."""
    vocabulary = Vocabulary.build(["望海街道"])
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with SegmentationPool(vocabulary, workers=2) as pool:
            assert [tokens for _, tokens in pool.segment([(0, ["望海街道的路灯坏了"])])] == [
                Segmenter(vocabulary).segment(["望海街道的路灯坏了"])]
            workers = [process.pid for process in pool._pool._pool]
            assert _ignored_signals(os.getpid()) & (1 << (signal.SIGTERM - 1))  # the parent does ignore it
            assert workers and not any(_ignored_signals(pid) & (1 << (signal.SIGTERM - 1)) for pid in workers)
    finally:
        signal.signal(signal.SIGTERM, previous)
