"""Keywords by TF-IDF, with document frequencies learned from the platform's own corpus.

* `text.term_document_frequency`: for every token, in how many work orders it occurs (the corpus
  is `text.order_tokens`).
* `text.order_keywords`: the top-k terms of each order by (1 + ln tf) * idf, idf = ln((1+N)/(1+df)) + 1.
  Computed only for orders without keywords for their current text (new or edited texts).
* `text.topic_keywords`: the top terms of each topic (level-3 and level-2 category) by class-based
  TF-IDF (c-TF-IDF): tf of the term within the topic's orders, normalised by the topic's size, times
  ln(1 + A / f), A = mean tokens per topic, f = the term's frequency over all topics. Terms that are
  frequent everywhere (places, boilerplate) score low; terms typical of one topic score high.

The document frequencies and the topics' term counts are kept up to date incrementally
(`update_term_counts`): text_state.keyword_inputs remembers per order what they count (text hash,
vocabulary version, category, whether counted, tokens), so a run subtracts the old terms of the
orders that changed and adds their new ones; the tables equal a recount. Without that state they
are counted whole.

TextRank (jieba.analyse.textrank) is not used: hotline texts are short (a title and one or two
sentences), too few co-occurrences for a stable word graph, and it cannot reuse a corpus-wide
document frequency; TF-IDF runs as one SQL pass instead of a Python loop per text.
"""

from __future__ import annotations

import duckdb

from citizen_voice.text import store
from citizen_voice.text.tokens import SCHEMA, STATE_SCHEMA, TEXTS, ensure_schema
from citizen_voice.text.tokens import TABLE as TOKENS
from citizen_voice.warehouse import transaction

DF_TABLE = f"{SCHEMA}.term_document_frequency"
ORDER_TABLE = f"{SCHEMA}.order_keywords"
TOPIC_TABLE = f"{SCHEMA}.topic_keywords"
ORDER_KEYWORDS = 5
TOPIC_KEYWORDS = 10
STATE = f"{STATE_SCHEMA}.keyword_inputs"
TERM_DOCUMENTS = f"{STATE_SCHEMA}.term_documents"
TOPIC_COUNTS = f"{STATE_SCHEMA}.topic_term_counts"
STATE_META = f"{STATE_SCHEMA}.keyword_meta"
STATE_VERSION = 1  # bump when the state tables change meaning
# what the counts read of an order (an orphan token row, without a text, is in the corpus but in no topic)
COUNTED = f"""
    select k.order_no, k.text_hash, k.vocabulary_version, t.category_code, t.category_l2_code,
           t.order_no is not null and t.demand_type_code is distinct from 'WX' as counted, k.tokens
    from {TOKENS} k left join {TEXTS} t on t.order_no = k.order_no"""


def _terms(source: str) -> str:
    return f"select order_no, unnest(string_split(tokens, ' ')) as term from {source} where tokens <> ''"


def _document_terms(source: str) -> str:
    return f"select unnest(list_distinct(string_split(tokens, ' '))) as term from {source} where tokens <> ''"


def _topic_terms(source: str) -> str:
    """(topic_level, topic_code, term, n): term occurrences per level-3 and level-2 category."""
    return f"""
        select 'category' as topic_level, category_code as topic_code, term, count(*) as n
        from (select category_code, unnest(string_split(tokens, ' ')) as term from {source}
              where counted and tokens <> '') group by all
        union all
        select 'category_l2', category_l2_code, term, count(*)
        from (select category_l2_code, unnest(string_split(tokens, ' ')) as term from {source}
              where counted and tokens <> '') group by all"""


def _state_valid(con) -> bool:
    found = {r[0] for r in con.execute("select table_name from information_schema.tables where table_schema = ?",
                                       [STATE_SCHEMA]).fetchall()}
    if not {t.split(".")[1] for t in (STATE, TERM_DOCUMENTS, TOPIC_COUNTS, STATE_META)} <= found:
        return False
    return con.execute(f"select state_key from {STATE_META}").fetchall() == [(f"{STATE_VERSION}/{duckdb.__version__}",)]


def update_term_counts(con, full: bool = False) -> dict:
    """Bring the document frequencies (text_state.term_documents) and the topics' term counts
    (text_state.topic_term_counts) up to date with text.order_tokens and the texts' categories:
    only the orders whose text hash, vocabulary version, category or counting changed are counted
    again (their old terms out, their new ones in), or everything without state. Idempotent."""
    ensure_schema(con)
    if full or not _state_valid(con):
        with transaction(con):
            con.execute(f"create or replace table {STATE} as {COUNTED} order by k.order_no")
            con.execute(f"""create or replace table {TERM_DOCUMENTS} as
                            select term, count(*) as documents from ({_document_terms(STATE)}) group by term""")
            con.execute(f"create or replace table {TOPIC_COUNTS} as {_topic_terms(STATE)}")
            con.execute(f"create or replace table {STATE_META} as select ? as state_key",
                        [f"{STATE_VERSION}/{duckdb.__version__}"])
        return {"mode": "full", "counted_orders": con.execute(f"select count(*) from {STATE}").fetchall()[0][0]}
    con.execute(f"""
        create or replace temp table keyword_changed as
        select coalesce(n.order_no, s.order_no) as order_no
        from (select * exclude (tokens) from ({COUNTED})) n full join {STATE} s on s.order_no = n.order_no
        where s.order_no is null or n.order_no is null or n.text_hash <> s.text_hash
           or n.vocabulary_version <> s.vocabulary_version or n.counted <> s.counted
           or n.category_code is distinct from s.category_code
           or n.category_l2_code is distinct from s.category_l2_code""")
    changed = con.execute("select count(*) from keyword_changed").fetchall()[0][0]
    if not changed:
        con.execute("drop table keyword_changed")
        return {"mode": "incremental", "counted_orders": 0}
    with transaction(con):
        con.execute(f"""create or replace temp table keyword_old as
                        select s.* from {STATE} s join keyword_changed using (order_no)""")
        con.execute(f"""create or replace temp table keyword_new as
                        select n.* from ({COUNTED}) n where n.order_no in (select order_no from keyword_changed)""")
        con.execute(f"""
            create or replace table {TERM_DOCUMENTS} as
            select term, sum(documents)::bigint as documents from (
                select term, documents from {TERM_DOCUMENTS}
                union all select term, -1 from ({_document_terms('keyword_old')})
                union all select term, 1 from ({_document_terms('keyword_new')}))
            group by term having sum(documents) <> 0""")
        con.execute(f"""
            create or replace table {TOPIC_COUNTS} as
            select topic_level, topic_code, term, sum(n)::bigint as n from (
                select * from {TOPIC_COUNTS}
                union all select topic_level, topic_code, term, -n from ({_topic_terms('keyword_old')})
                union all select * from ({_topic_terms('keyword_new')}))
            group by all having sum(n) <> 0""")
        con.execute(f"delete from {STATE} where order_no in (select order_no from keyword_changed)")
        con.execute(f"insert into {STATE} select * from keyword_new")
    for table in ("keyword_changed", "keyword_old", "keyword_new"):
        con.execute(f"drop table if exists {table}")
    return {"mode": "incremental", "counted_orders": changed}


def refresh_document_frequencies(con, full: bool = False) -> int:
    """text.term_document_frequency from the term counts (brought up to date first)."""
    update_term_counts(con, full)
    con.execute(f"""
        create or replace table {DF_TABLE} as
        select term, documents::integer as document_count,
               (select count(*) from {TOKENS})::integer as corpus_documents
        from {TERM_DOCUMENTS}""")
    return con.execute(f"select count(*) from {DF_TABLE}").fetchall()[0][0]


def _create_place_terms(con) -> None:
    """Place names (structured fields already) are kept out of the keywords."""
    con.execute("create or replace temp table place_terms (term varchar)")
    for table, column in (("dim_district", "district_name"), ("dim_street", "street_name"),
                          ("dim_community", "community_name")):
        if con.execute("select count(*) from information_schema.tables where table_schema = 'marts' "
                       "and table_name = ?", [table]).fetchall()[0][0]:
            con.execute(f"insert into place_terms select distinct {column} from marts.{table}")


def update_order_keywords(con, top_k: int = ORDER_KEYWORDS) -> dict:
    """Keywords of the orders whose current text has none yet, `store.TEXT_BATCH` orders at a time
    (each batch its own transaction); orphans removed."""
    ensure_schema(con)
    con.execute(f"""create table if not exists {ORDER_TABLE} (
        order_no varchar not null, text_hash varchar not null, keywords varchar, computed_at timestamp not null)""")
    batch_size = store.TEXT_BATCH
    # the pending keys only, numbered into batches; a batch's tokens are joined in when it is scored
    con.execute(f"""
        create or replace temp table pending_keyword_keys as
        select k.order_no, k.text_hash, (row_number() over (order by k.order_no) - 1) // {int(batch_size)} as batch
        from {TOKENS} as k
        left join {ORDER_TABLE} as w on w.order_no = k.order_no and w.text_hash = k.text_hash
        where w.order_no is null""")
    pending, batches = con.execute("select count(*), coalesce(max(batch) + 1, 0) from pending_keyword_keys"
                                   ).fetchall()[0]
    _create_place_terms(con)
    for batch in range(batches):
        con.execute(f"""
            create or replace temp table pending_keywords as
            select p.order_no, p.text_hash, k.tokens
            from pending_keyword_keys as p join {TOKENS} as k on k.order_no = p.order_no
            where p.batch = {batch}""")
        con.execute(f"""
            create or replace temp table keyword_batch as
            with tf as (
                select order_no, term, count(*) as n from ({_terms('pending_keywords')}) group by order_no, term
            ),
            scored as (
                select tf.order_no, tf.term,
                       (1 + ln(tf.n)) * (ln((1.0 + df.corpus_documents) / (1.0 + df.document_count)) + 1) as score
                from tf join {DF_TABLE} as df on df.term = tf.term
                where tf.term not in (select term from place_terms)
            ),
            ranked as (
                select *, row_number() over (partition by order_no order by score desc, term) as rank from scored
            )
            select p.order_no, p.text_hash, top.keywords, current_timestamp::timestamp as computed_at
            from pending_keywords as p
            left join (
                select order_no, string_agg(term, ',' order by rank) as keywords
                from ranked where rank <= {int(top_k)} group by order_no
            ) as top on top.order_no = p.order_no""")
        store.replace_rows(con, ORDER_TABLE, "keyword_batch")
    for table in ("pending_keyword_keys", "pending_keywords", "keyword_batch"):
        con.execute(f"drop table if exists {table}")
    removed = store.delete_orphans(con, ORDER_TABLE, TOKENS)
    return {"keyworded": pending, "removed": removed}


def refresh_topic_keywords(con, top_k: int = TOPIC_KEYWORDS, full: bool = False) -> int:
    """c-TF-IDF top terms per level-3 and level-2 category (recorded categories), from the topics' term
    counts (brought up to date first); place names left out."""
    update_term_counts(con, full)
    _create_place_terms(con)
    con.execute(f"""
        create or replace table {TOPIC_TABLE} as
        with by_topic as (
            select topic_level, topic_code, term, n from {TOPIC_COUNTS}
            where term not in (select term from place_terms)
        ),
        sized as (
            select *, sum(n) over (partition by topic_level, topic_code) as topic_tokens,
                      sum(n) over (partition by topic_level, term) as term_total,
                      count(distinct topic_code) over (partition by topic_level) as topics
            from by_topic
        ),
        scored as (
            select topic_level, topic_code, term, n,
                   (n::double / topic_tokens)
                   * ln(1 + (sum(n) over (partition by topic_level))::double / topics / term_total) as score
            from sized
        )
        select topic_level, topic_code,
               row_number() over (partition by topic_level, topic_code order by score desc, term)::integer as rank,
               term, round(score, 6) as score, n::integer as occurrences
        from scored
        qualify rank <= {int(top_k)}""")
    return con.execute(f"select count(*) from {TOPIC_TABLE}").fetchall()[0][0]


def topic_terms(con, topic_level: str = "category") -> dict[str, list[str]]:
    rows = con.execute(f"select topic_code, term from {TOPIC_TABLE} where topic_level = ? order by topic_code, rank",
                       [topic_level]).fetchall()
    out: dict[str, list[str]] = {}
    for code, term in rows:
        out.setdefault(code, []).append(term)
    return out
