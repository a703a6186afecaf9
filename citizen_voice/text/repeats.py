"""Repeat demands (重复诉求) and 并单 suggestions.

Two orders are linked when, within a window,
* the same pseudonymous caller (fct_work_orders.caller_key) comes back (within `caller_window_days`)
  about the same matter: the same level-2 category or the same community; or
* their texts are near-duplicates about the same place: the same community (the street when the
  community is unknown), within `text_window_days`, and SimHash fingerprints (64 bits over the
  jieba tokens, idf-weighted) at most `max_hamming` bits apart. Candidates are found by banding
  the fingerprint into `max_hamming + 1` bands (two fingerprints that close share a band).

Invalid calls (无效) and praise (表扬) are never linked, nor orders without a received time. Linked
orders form repeat groups (connected components). Contract of `text.repeat_demands` (read by the
indicators for 重复投诉率): one row per order of marts.fct_work_orders,
  order_no, repeat_group_id (the group's first order; NULL for an order in no group),
  is_repeat (true for every order of a group except its earliest), match_reason
  ('same_caller', 'similar_text' or 'same_caller+similar_text': how the order was linked to an
  earlier one; NULL for first and ungrouped orders), first_order_no (the group's earliest order).
`text.merge_suggestions` proposes 并单 links: a repeat whose group's first order was still open
when it arrived (and within `merge_window_hours`) could be merged into it.

`refresh` is incremental (the tables equal a full recompute): from the state of the last run
(text_state.repeat_state, repeat_terms, repeat_meta) only the orders a change can reach are re-linked
and only the groups they were or are in rebuilt; without state or with other settings it recomputes all.
"""

from __future__ import annotations

import gc
import hashlib
import json
from array import array
from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from citizen_voice.digest import digest_sql
from citizen_voice.text import store
from citizen_voice.text.tokens import SCHEMA, STATE_SCHEMA, TEXTS, ensure_schema
from citizen_voice.text.tokens import TABLE as TOKENS
from citizen_voice.warehouse import has_table, transaction

TABLE = f"{SCHEMA}.repeat_demands"
SUGGESTIONS = f"{SCHEMA}.merge_suggestions"
BITS = 64
NOT_DEMANDS = ("WX", "BY")  # invalid calls and praise carry no demand to repeat
MIN_TEXT_TOKENS = 5  # shorter texts are too alike by chance to call near-duplicates


@dataclass(frozen=True)
class RepeatSettings:
    caller_window_days: int = 30
    text_window_days: int = 7
    max_hamming: int = 3
    merge_window_hours: int = 48


def _token_bits(vocabulary: list[str]) -> np.ndarray:
    """+1/-1 per bit for each token, from a stable hash (not Python's salted hash())."""
    if not vocabulary:
        return np.zeros((0, BITS), dtype=np.float32)
    raw = np.frombuffer(b"".join(hashlib.blake2b(t.encode(), digest_size=8).digest() for t in vocabulary),
                        dtype=">u8").astype(np.uint64)
    bits = (raw[:, None] >> np.arange(BITS, dtype=np.uint64)) & np.uint64(1)
    return bits.astype(np.float32) * 2 - 1


def _idf(documents_per_term: np.ndarray, documents: int) -> np.ndarray:
    df = documents_per_term.astype(np.float32)
    return np.log((1 + documents) / (1 + df)) + 1  # float32, as the fingerprints are summed


def term_ids(token_docs: list[str], index: dict[str, int], terms: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, ids): per document the ids of its distinct terms in `index`, in the terms' string order
    (the order a fingerprint sums them in, whatever the ids). Terms not in `index` are added to it
    (and to `terms`) when `terms` is given."""
    indptr, ids = array("q", [0]), array("i")  # typed arrays: a few bytes per token, not Python objects
    for joined in token_docs:
        for term in sorted(set(joined.split())) if joined else ():
            found = index.get(term)
            if found is None:
                if terms is None:
                    raise KeyError(term)
                found = index[term] = len(terms)
                terms.append(term)
            ids.append(found)
        indptr.append(len(ids))
    return np.frombuffer(indptr, dtype=np.int64), np.frombuffer(ids, dtype=np.int32)


def fingerprints(indptr: np.ndarray, ids: np.ndarray, idf: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """64-bit SimHash per document (rows `indptr` over term `ids`), idf-weighted, as uint64: bit b is set
    when the sum over the document's terms of idf * (+1/-1 of bit b) is positive. The float32 sums run
    in the order of `ids` within a document, so a fingerprint depends only on its terms and their idf,
    not on the other documents of a batch."""
    n = len(indptr) - 1
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    matrix = sparse.csr_matrix((idf[ids], ids, indptr), shape=(n, len(idf)))
    sums = np.asarray(matrix @ bits)
    return np.packbits(sums > 0, axis=1, bitorder="little").view("<u8").ravel().astype(np.uint64)


def simhash(token_docs: list[str]) -> np.ndarray:
    """64-bit SimHash per document (idf-weighted token set, the idf over these documents), as uint64."""
    terms: list[str] = []
    indptr, ids = term_ids(token_docs, {}, terms)
    idf = _idf(np.bincount(ids, minlength=len(terms)), len(token_docs))
    return fingerprints(indptr, ids, idf, _token_bits(terms))


def _hamming(a: np.uint64, b: np.uint64) -> int:
    return int(a ^ b).bit_count()


SAME_CALLER, SIMILAR_TEXT = 1, 2  # match reasons, as bits
REASONS = {SAME_CALLER: "same_caller", SIMILAR_TEXT: "similar_text",
           SAME_CALLER | SIMILAR_TEXT: "same_caller+similar_text"}


class _Window:
    """Time-ordered lists of entries (position, time, ...) by key, for a window of `seconds`. Keys
    live in two generations: a key in use moves to the current one, and the previous one is dropped
    whole once the current one is older than the window (the last entries of its keys are older
    still), so keys no longer used are forgotten without scanning them. Old entries of a list are
    dropped when the list is used."""

    __slots__ = ("seconds", "current", "previous", "started")

    def __init__(self, seconds: int):
        self.seconds = seconds
        self.current: dict = {}
        self.previous: dict = {}
        self.started = -(2 ** 62)

    def rotate(self, now: int) -> None:
        self.previous, self.current, self.started = self.current, {}, now


def _drop_before(entries: list, cutoff: int) -> None:
    keep = 1
    while keep < len(entries) and entries[keep][1] < cutoff:
        keep += 1
    del entries[:keep]


class RepeatLinker:
    """Links orders fed in time order (received_at, then order_no), chunk after chunk. Only the orders
    still inside a window are kept (per caller: the last `caller_window_days`; per text band bucket:
    the last `text_window_days`), so memory grows with the orders of a window, not with the history,
    apart from 17 bytes per order for the groups (union-find parent, first link, reason).

    Orders without a received time cannot be placed in a window and are never linked."""

    def __init__(self, total: int, settings: RepeatSettings = RepeatSettings()):
        self.settings = settings
        self.seen = 0
        self.parent = array("q", range(total))  # union-find; a root is the earliest order of its group
        self.caller_link = array("q", [-1]) * total  # the earlier order of the same caller an order is linked to
        self.text_link = array("q", [-1]) * total  # the earlier near-duplicate an order is linked to
        self.reason = bytearray(total)  # SAME_CALLER | SIMILAR_TEXT bits
        self._callers = _Window(settings.caller_window_days * 86400)  # caller_key -> (position, time, l2, community)
        self._buckets = _Window(settings.text_window_days * 86400)  # (place, band, value) -> (position, time, fp)

    def _find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    @property
    def linked_to(self) -> array:
        """The earlier order each order was first linked to (its caller link, else its text link), -1 if none."""
        return array("q", (c if c >= 0 else t for c, t in zip(self.caller_link, self.text_link, strict=True)))

    def _link(self, later: int, earlier: int, reason: int) -> None:
        a, b = self._find(later), self._find(earlier)
        if a != b:
            self.parent[max(a, b)] = min(a, b)
        self.reason[later] |= reason
        (self.caller_link if reason == SAME_CALLER else self.text_link)[later] = earlier

    def add(self, received: list[int | None], demand_type_code: list, caller_key: list, category_l2_code: list,
            street_code: list, community_code: list, tokens: list, fingerprints: list[int]) -> None:
        """The next orders in time order: received times in seconds, the columns of `find_repeats`,
        and the SimHash fingerprints of their tokens."""
        # the loop allocates small lists and tuples by the million and makes no reference cycles: the
        # cyclic garbage collector would only walk the windows again and again (3x the loop's time)
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._add(received, demand_type_code, caller_key, category_l2_code, street_code, community_code, tokens,
                      fingerprints)
        finally:
            if collecting:
                gc.enable()
        self.seen += len(received)

    def _add(self, received, demand_type_code, caller_key, category_l2_code, street_code, community_code, tokens,
             fingerprints) -> None:
        max_hamming = self.settings.max_hamming
        bands = max_hamming + 1
        width = BITS // bands
        mask = (1 << width) - 1
        callers, buckets = self._callers, self._buckets
        caller_seconds, text_seconds = callers.seconds, buckets.seconds
        # the loop runs once per order of the history: the window lookups are written out in it
        for r, t in enumerate(received):
            i = self.seen + r
            if t is None:
                continue
            is_demand = demand_type_code[r] not in NOT_DEMANDS
            l2, community = category_l2_code[r], community_code[r]
            caller = caller_key[r]
            if caller is not None and is_demand:
                if t - callers.started > caller_seconds:
                    callers.rotate(t)
                recent = callers.current.get(caller)
                if recent is None:
                    recent = callers.previous.pop(caller, None)
                    if recent is None:
                        recent = []
                    callers.current[caller] = recent
                if recent and recent[0][1] < t - caller_seconds:
                    _drop_before(recent, t - caller_seconds)
                for j, _, l2_j, community_j in reversed(recent):
                    if l2 == l2_j or (community is not None and community == community_j):
                        self._link(i, j, SAME_CALLER)
                        break
                recent.append((i, t, l2, community))
            place = community if community is not None else street_code[r]
            joined = tokens[r] or ""
            if place is None or not is_demand or joined.count(" ") + 1 < MIN_TEXT_TOKENS:
                continue
            if t - buckets.started > text_seconds:
                buckets.rotate(t)
            current, previous, cutoff = buckets.current, buckets.previous, t - text_seconds
            fp = fingerprints[r]
            entry = (i, t, fp)
            best = None
            for b in range(bands):
                key = (place, b, (fp >> (b * width)) & mask)
                bucket = current.get(key)
                if bucket is None:
                    bucket = previous.pop(key, None)
                    if bucket is None:
                        current[key] = [entry]
                        continue
                    current[key] = bucket
                if bucket[0][1] < cutoff:
                    _drop_before(bucket, cutoff)
                for j, _, fp_j in reversed(bucket):  # the latest first
                    if best is not None and j <= best:
                        break  # no later order than the one found already
                    if (fp ^ fp_j).bit_count() <= max_hamming:
                        best = j
                        break
                bucket.append(entry)
            if best is not None:
                self._link(i, best, SIMILAR_TEXT)

    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """(root, grouped) per position: the group's earliest position, and whether the group has more
        than one order."""
        root = np.frombuffer(self.parent, dtype=np.int64).copy()
        while True:  # pointer jumping: a parent is never later than its child
            jumped = root[root]
            if np.array_equal(jumped, root):
                break
            root = jumped
        grouped = np.bincount(root, minlength=len(root))[root] > 1 if len(root) else np.zeros(0, dtype=bool)
        return root, grouped


def _received_seconds(column) -> list[int | None]:
    """Seconds since the epoch (floored), None where missing."""
    values = pd.Series(column).to_numpy(dtype="datetime64[s]").astype(np.int64)
    missing = pd.isna(pd.Series(column)).to_numpy()
    return [None if m else int(v) for v, m in zip(values.tolist(), missing.tolist(), strict=True)]


def find_repeats(orders: pd.DataFrame, settings: RepeatSettings = RepeatSettings()) -> pd.DataFrame:
    """Repeat groups of `orders` (order_no, received_at, demand_type_code, caller_key, category_l2_code,
    street_code, community_code, tokens); invalid calls and praise are never linked. Returns the
    contract columns plus `linked_to` (the earlier order the order was linked to)."""
    orders = orders.sort_values(["received_at", "order_no"], kind="stable").reset_index(drop=True)
    n = len(orders)

    def column(name: str) -> list:
        return orders[name].astype(object).where(orders[name].notna(), None).tolist()

    tokens = orders["tokens"].fillna("").tolist()
    linker = RepeatLinker(n, settings)
    linker.add(_received_seconds(orders["received_at"]), column("demand_type_code"), column("caller_key"),
               column("category_l2_code"), column("street_code"), column("community_code"), tokens,
               simhash(tokens).tolist())
    root, grouped = linker.groups()
    order_nos = orders["order_no"].tolist()
    first = [order_nos[r] if g else None for r, g in zip(root.tolist(), grouped.tolist(), strict=True)]
    return pd.DataFrame({
        "order_no": order_nos,
        "repeat_group_id": first,
        "is_repeat": (grouped & (root != np.arange(n))).tolist(),
        "match_reason": [REASONS.get(code) for code in linker.reason],
        "first_order_no": first,
        "linked_to": [order_nos[j] if j >= 0 else None for j in linker.linked_to],
    })


ORDERED = "order by f.received_at, f.order_no"  # the linker's order; positions are row numbers in it
STATE = f"{STATE_SCHEMA}.repeat_state"
TERMS = f"{STATE_SCHEMA}.repeat_terms"
META = f"{STATE_SCHEMA}.repeat_meta"
STATE_VERSION = 2  # bump when the state tables change meaning (2: digests instead of DuckDB hashes)
FULL_SHARE = 0.25  # more changed orders than this share of all: a full recompute is cheaper
# The inputs of an order's links (received_at, demand type, caller, level-2 category, place, tokens) and
# of its 并单 suggestion, as digests: an order whose digest changed is re-linked.
_LINKED_TEXTS = ["f.demand_type_code", "f.caller_key", "t.category_l2_code", "f.street_code", "f.community_code",
                 "coalesce(k.tokens, '')"]
INPUTS = f"""
    select f.order_no, f.received_at, f.caller_key, coalesce(f.community_code, f.street_code) as place,
           {digest_sql(["f.received_at", *_LINKED_TEXTS], _LINKED_TEXTS)} as input_hash,
           {digest_sql(["f.received_at", "f.closed_at", "f.parent_order_no"], ["f.parent_order_no"])} as merge_hash
    from marts.fct_work_orders f
    left join {TEXTS} t on t.order_no = f.order_no
    left join {TOKENS} k on k.order_no = f.order_no"""
LINKER_COLUMNS = """f.received_at, f.demand_type_code, f.caller_key, t.category_l2_code, f.street_code,
                    f.community_code, coalesce(k.tokens, '') as tokens"""
TEMP_TABLES = ("repeat_now", "repeat_changed", "repeat_merge_changed", "repeat_changed_versions", "repeat_affected",
               "repeat_context", "repeat_regrouped", "repeat_resuggested", "repeat_positions")


def _state_key(settings: RepeatSettings) -> str:
    """What the state is valid for: another key (settings, method, DuckDB's hash) means a full recompute."""
    return json.dumps({"settings": asdict(settings), "bits": BITS, "min_text_tokens": MIN_TEXT_TOKENS,
                       "not_demands": NOT_DEMANDS, "state_version": STATE_VERSION, "duckdb": duckdb.__version__},
                      sort_keys=True)


def _table_exists(con, table: str) -> bool:
    return has_table(con, *table.split("."))


def _state_valid(con, settings: RepeatSettings) -> bool:
    if not all(_table_exists(con, t) for t in (TABLE, SUGGESTIONS, STATE, TERMS, META)):
        return False
    return con.execute(f"select state_key from {META}").fetchall() == [(_state_key(settings),)]


def refresh(con, settings: RepeatSettings = RepeatSettings(), full: bool = False) -> dict:
    """Bring text.repeat_demands and text.merge_suggestions up to date (idempotent): incrementally from
    the state of the last run (text_state.repeat_state: per order its input hashes, terms, fingerprint
    and links), or recomputed whole when asked, when there is no state or when the settings changed.
    Both give the same tables."""
    ensure_schema(con)
    if full or not _state_valid(con, settings):
        figures = _refresh_full(con, settings)
    else:
        figures = _refresh_incremental(con, settings)
    for table in TEMP_TABLES:
        con.execute(f"drop table if exists {table}")
    total = figures["orders"]
    repeats, groups = con.execute(f"select count(*) filter (where is_repeat), count(distinct repeat_group_id) "
                                  f"from {TABLE}").fetchall()[0]
    suggestions = con.execute(f"select count(*), count(*) filter (where already_merged) from {SUGGESTIONS}").fetchall()[0]
    return {**figures, "repeat_orders": repeats, "groups": groups,
            "repeat_rate": round(repeats / total, 4) if total else None,
            "merge_suggestions": suggestions[0], "merge_suggestions_already_merged": suggestions[1]}


def _suggestions_sql(settings: RepeatSettings, only: str | None = None) -> str:
    """The 并单 suggestions, of every repeat or of the orders in the relation `only`."""
    return f"""
        select r.order_no, r.first_order_no as suggested_parent_order_no, r.match_reason,
               round(date_diff('second', p.received_at, o.received_at) / 3600.0, 1) as hours_after_parent,
               coalesce(o.parent_order_no = r.first_order_no, false) as already_merged
        from {TABLE} r
        join marts.fct_work_orders o on o.order_no = r.order_no
        join marts.fct_work_orders p on p.order_no = r.first_order_no
        where r.is_repeat
          and (p.closed_at is null or p.closed_at > o.received_at)
          and o.received_at <= p.received_at + interval {int(settings.merge_window_hours)} hour
          {f"and r.order_no in (select order_no from {only})" if only else ""}
        order by r.order_no"""


def _write_vocabulary(con, settings: RepeatSettings, terms: list[str], documents: np.ndarray, total: int) -> None:
    """The terms (ids as stored per order, documents per term) and the key the state is valid for."""
    con.register("repeat_terms_rows", pa.table({"term_id": np.arange(len(terms), dtype=np.int32),
                                                "term": pa.array(terms, pa.string()),
                                                "documents": documents.astype(np.int64)}))
    con.execute(f"create or replace table {TERMS} as select * from repeat_terms_rows")
    con.unregister("repeat_terms_rows")
    con.execute(f"create or replace table {META} as select ? as state_key, ?::bigint as corpus_documents",
                [_state_key(settings), total])


def _id_lists(indptr: np.ndarray, ids: np.ndarray) -> pa.Array:
    return pa.LargeListArray.from_arrays(pa.array(indptr, pa.int64()), pa.array(ids, pa.int32()))


def _flat_ids(lists: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, ids) of a list column read back."""
    offsets = lists.offsets.to_numpy().astype(np.int64)
    values = lists.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]] if len(lists) else np.zeros(0)
    return offsets - offsets[0], values.astype(np.int32)


def _refresh_full(con, settings: RepeatSettings) -> dict:
    """Every order streamed through the linker `store.TEXT_BATCH` at a time (a first pass numbers the
    terms and counts their documents, the idf); the groups are written back by position in SQL, with
    the state for the next incremental run."""
    total = con.execute("select count(*) from marts.fct_work_orders").fetchall()[0][0]
    source = f"""
        from marts.fct_work_orders f
        left join {TEXTS} t on t.order_no = f.order_no
        left join {TOKENS} k on k.order_no = f.order_no
        {ORDERED}"""
    terms: list[str] = []
    index: dict[str, int] = {}
    indptrs, id_parts = [], []
    for batch in store.read_batches(con, f"select coalesce(k.tokens, '') as tokens {source}"):
        indptr, ids = term_ids(batch["tokens"].to_pylist(), index, terms)
        indptrs.append(indptr)
        id_parts.append(ids)
    # one id list for all orders (the second pass's batches need not be cut like the first's)
    starts = np.cumsum([0] + [len(ids) for ids in id_parts])
    indptr = np.concatenate([np.zeros(1, dtype=np.int64)]
                            + [p[1:] + s for p, s in zip(indptrs, starts[:-1], strict=True)]).astype(np.int64)
    ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int32)
    del indptrs, id_parts
    documents = np.bincount(ids, minlength=len(terms))
    idf, bits = _idf(documents, total), _token_bits(terms)
    linker = RepeatLinker(total, settings)
    all_fingerprints = np.zeros(total, dtype=np.uint64)
    for batch in store.read_batches(con, f"select {LINKER_COLUMNS} {source}"):
        start, end = linker.seen, linker.seen + batch.num_rows
        batch_fingerprints = fingerprints(indptr[start:end + 1] - indptr[start], ids[indptr[start]:indptr[end]],
                                          idf, bits)
        all_fingerprints[start:end] = batch_fingerprints
        linker.add(_received_seconds(batch["received_at"].to_pandas()), batch["demand_type_code"].to_pylist(),
                   batch["caller_key"].to_pylist(), batch["category_l2_code"].to_pylist(),
                   batch["street_code"].to_pylist(), batch["community_code"].to_pylist(), batch["tokens"].to_pylist(),
                   batch_fingerprints.tolist())
    root, grouped = linker.groups()
    positions = np.flatnonzero(grouped)
    links = pa.table({"pos": positions, "group_pos": root[positions],
                      "reason": np.frombuffer(linker.reason, dtype=np.uint8)[positions]})
    state = pa.table({"pos": np.arange(total, dtype=np.int64),
                      "term_ids": _id_lists(indptr, ids), "fingerprint": all_fingerprints,
                      "caller_pos": np.frombuffer(linker.caller_link, dtype=np.int64),
                      "text_pos": np.frombuffer(linker.text_link, dtype=np.int64),
                      "reason": np.frombuffer(linker.reason, dtype=np.uint8)})
    with transaction(con):
        con.execute(f"""create or replace temp table repeat_positions as
                        select f.order_no, row_number() over ({ORDERED}) - 1 as pos from marts.fct_work_orders f""")
        con.register("repeat_links", links)
        reasons = " ".join(f"when {code} then '{name}'" for code, name in REASONS.items())
        con.execute(f"""
            create or replace table {TABLE} as
            select o.order_no::varchar as order_no, g.order_no::varchar as repeat_group_id,
                   coalesce(l.group_pos <> l.pos, false) as is_repeat,
                   (case l.reason {reasons} end)::varchar as match_reason,
                   g.order_no::varchar as first_order_no
            from repeat_positions o
            left join repeat_links l on l.pos = o.pos
            left join repeat_positions g on g.pos = l.group_pos
            order by o.order_no""")
        con.unregister("repeat_links")
        con.register("repeat_state_rows", state)
        con.execute(f"""
            create or replace table {STATE} as
            select o.order_no::varchar as order_no, i.received_at, i.caller_key, i.place, i.input_hash, i.merge_hash,
                   s.term_ids::integer[] as term_ids, s.fingerprint::ubigint as fingerprint,
                   c.order_no::varchar as caller_link, x.order_no::varchar as text_link, s.reason::utinyint as reason
            from repeat_positions o
            join repeat_state_rows s on s.pos = o.pos
            join ({INPUTS}) i on i.order_no = o.order_no
            left join repeat_positions c on c.pos = s.caller_pos
            left join repeat_positions x on x.pos = s.text_pos
            order by o.order_no""")
        con.unregister("repeat_state_rows")
        con.execute(f"create or replace table {SUGGESTIONS} as {_suggestions_sql(settings)}")
        _write_vocabulary(con, settings, terms, documents, total)
    return {"mode": "full", "orders": total, "changed_orders": total, "moved_fingerprints": total,
            "relinked_orders": total, "linker_orders": total, "regrouped_orders": total}


def _count(con, relation: str) -> int:
    return con.execute(f"select count(*) from {relation}").fetchall()[0][0]


def _refresh_incremental(con, settings: RepeatSettings) -> dict:
    """Only what a change can reach. An order's links depend on its own inputs and on the orders within a
    window before it with its caller, or with its place and a fingerprint close to its own; so the
    orders to re-link are the changed ones (inputs hash, or a fingerprint moved by the corpus-wide idf)
    and those after a changed order (its old and new version) within a window sharing its caller or
    place and a close fingerprint. They are linked again with the orders they can link to, and the
    groups they were or now are in are rebuilt from the stored links."""
    total = _count(con, "marts.fct_work_orders")
    terms = [term for (term,) in con.execute(f"select term from {TERMS} order by term_id").fetchall()]
    index = {term: i for i, term in enumerate(terms)}
    documents = con.execute(f"select documents from {TERMS} order by term_id").fetchnumpy()["documents"]
    documents = np.asarray(documents, dtype=np.int64)
    con.execute(f"create or replace temp table repeat_now as {INPUTS}")
    con.execute(f"""
        create or replace temp table repeat_changed as
        select coalesce(n.order_no, s.order_no) as order_no, n.order_no is null as removed, true as inputs_changed
        from repeat_now n full join {STATE} s on s.order_no = n.order_no
        where s.order_no is null or n.order_no is null or n.input_hash <> s.input_hash""")
    changed = _count(con, "repeat_changed")
    if changed > FULL_SHARE * total:  # e.g. a new vocabulary re-segmented everything: one pass is cheaper
        return {**_refresh_full(con, settings), "full_because": f"{changed} of {total} orders changed"}
    con.execute(f"""create or replace temp table repeat_merge_changed as
                    select n.order_no from repeat_now n left join {STATE} s using (order_no)
                    where s.merge_hash is distinct from n.merge_hash""")
    # the document frequencies follow the changed orders' terms: their old ones out, their new ones in
    _, old_ids = _flat_ids(con.sql(f"select s.term_ids from {STATE} s join repeat_changed c using (order_no)")
                           .to_arrow_table()["term_ids"].combine_chunks())
    fresh = con.sql(f"""select c.order_no, coalesce(k.tokens, '') as tokens from repeat_changed c
                        left join {TOKENS} k using (order_no) where not c.removed order by c.order_no""").to_arrow_table()
    fresh_indptr, fresh_ids = term_ids(fresh["tokens"].to_pylist(), index, terms)
    documents = (np.concatenate([documents, np.zeros(len(terms) - len(documents), dtype=np.int64)])
                 - np.bincount(old_ids, minlength=len(terms)) + np.bincount(fresh_ids, minlength=len(terms)))
    idf, bits = _idf(documents, total), _token_bits(terms)
    fresh_rows = pa.table({"order_no": fresh["order_no"], "term_ids": _id_lists(fresh_indptr, fresh_ids),
                           "fingerprint": fingerprints(fresh_indptr, fresh_ids, idf, bits)})
    # every other order's fingerprint under today's idf (vectorised over the stored term ids)
    moved_orders, moved_fingerprints = [], []
    for batch in con.sql(f"""
            select s.order_no, s.term_ids, s.fingerprint from {STATE} s
            join repeat_now n on n.order_no = s.order_no and n.input_hash = s.input_hash""").to_arrow_reader(
            store.TEXT_BATCH):  # on this connection (its temp tables); nothing is written meanwhile
        indptr, ids = _flat_ids(batch["term_ids"])
        now = fingerprints(indptr, ids, idf, bits)
        moved = now != batch["fingerprint"].to_numpy()
        moved_orders += np.asarray(batch["order_no"].to_pylist(), dtype=object)[moved].tolist()
        moved_fingerprints.append(now[moved])
    moved_rows = pa.table({"order_no": pa.array(moved_orders, pa.string()),
                           "fingerprint": np.concatenate(moved_fingerprints) if moved_fingerprints
                           else np.zeros(0, np.uint64)})
    caller_days, text_days = settings.caller_window_days + 1, settings.text_window_days + 1  # +1: whole seconds
    close = f"bit_count(xor(n.fingerprint, c.fingerprint)) <= {int(settings.max_hamming)}"
    with transaction(con):
        con.register("repeat_fresh", fresh_rows)
        con.register("repeat_moved", moved_rows)
        con.execute("insert into repeat_changed select order_no, false, false from repeat_moved")
        # an order can be a caller link only for its caller's later orders, and a text link only for later
        # orders of its place whose fingerprints are close to its own (old or new version); an order whose
        # fingerprint alone moved keeps its caller links
        versions = f"""select s.received_at, case when c.inputs_changed then s.caller_key end as caller_key,
                              s.place, s.fingerprint
                       from {STATE} s join repeat_changed c using (order_no)"""
        con.execute(f"create or replace temp table repeat_changed_versions as {versions}")
        con.execute(f"delete from {STATE} where order_no in (select order_no from repeat_changed where inputs_changed)")
        con.execute(f"""insert into {STATE}
                        select n.order_no, n.received_at, n.caller_key, n.place, n.input_hash, n.merge_hash,
                               f.term_ids::integer[], f.fingerprint::ubigint, null, null, 0
                        from repeat_now n join repeat_fresh f using (order_no)""")
        con.execute(f"update {STATE} s set fingerprint = m.fingerprint from repeat_moved m where s.order_no = m.order_no")
        con.execute(f"""update {STATE} s set merge_hash = n.merge_hash from repeat_now n
                        where n.order_no = s.order_no and s.merge_hash <> n.merge_hash""")
        con.unregister("repeat_fresh")
        con.unregister("repeat_moved")
        con.execute(f"insert into repeat_changed_versions {versions} where not c.removed")
        con.execute(f"""
            create or replace temp table repeat_affected as
            select order_no from repeat_changed where not removed
            union
            select n.order_no from {STATE} n join repeat_changed_versions c on n.caller_key = c.caller_key
                and n.received_at between c.received_at and c.received_at + interval {caller_days} day
            union
            select n.order_no from {STATE} n join repeat_changed_versions c on n.place = c.place
                and n.received_at between c.received_at and c.received_at + interval {text_days} day and {close}""")
        con.execute(f"""
            create or replace temp table repeat_context as
            with c as (select s.* from {STATE} s join repeat_affected using (order_no))
            select order_no from repeat_affected
            union
            select n.order_no from {STATE} n join c on n.caller_key = c.caller_key
                and n.received_at between c.received_at - interval {caller_days} day and c.received_at
            union
            select n.order_no from {STATE} n join c on n.place = c.place
                and n.received_at between c.received_at - interval {text_days} day and c.received_at and {close}""")
        context = con.sql(f"""
            select f.order_no, {LINKER_COLUMNS}, x.fingerprint, a.order_no is not null as affected
            from marts.fct_work_orders f
            join repeat_context c on c.order_no = f.order_no
            join {STATE} x on x.order_no = f.order_no
            left join repeat_affected a on a.order_no = f.order_no
            left join {TEXTS} t on t.order_no = f.order_no
            left join {TOKENS} k on k.order_no = f.order_no
            {ORDERED}""").to_arrow_table()
        linker = RepeatLinker(len(context), settings)
        linker.add(_received_seconds(context["received_at"].to_pandas()), context["demand_type_code"].to_pylist(),
                   context["caller_key"].to_pylist(), context["category_l2_code"].to_pylist(),
                   context["street_code"].to_pylist(), context["community_code"].to_pylist(),
                   context["tokens"].to_pylist(), context["fingerprint"].to_pylist())
        order_nos = np.array(context["order_no"].to_pylist() + [None], dtype=object)  # position -1: no link
        affected = context["affected"].to_numpy(zero_copy_only=False)
        con.register("repeat_relinked", pa.table({
            "order_no": pa.array(order_nos[:-1][affected].tolist(), pa.string()),
            "caller_link": pa.array(order_nos[np.frombuffer(linker.caller_link, dtype=np.int64)[affected]].tolist(),
                                    pa.string()),
            "text_link": pa.array(order_nos[np.frombuffer(linker.text_link, dtype=np.int64)[affected]].tolist(),
                                  pa.string()),
            "reason": pa.array(np.frombuffer(linker.reason, dtype=np.uint8)[affected], pa.uint8())}))
        con.execute(f"""update {STATE} s set caller_link = r.caller_link, text_link = r.text_link, reason = r.reason
                        from repeat_relinked r where r.order_no = s.order_no""")
        con.unregister("repeat_relinked")
        # the groups the re-linked orders were in (the removed orders' too) and the ones they link into now:
        # every link of their members stays among them, so their components are complete
        con.execute(f"""
            create or replace temp table repeat_regrouped as
            with touched as (
                select order_no from repeat_affected
                union select order_no from repeat_changed where removed
                union select s.caller_link from {STATE} s join repeat_affected a using (order_no)
                union select s.text_link from {STATE} s join repeat_affected a using (order_no)
            ),
            groups as (select distinct r.repeat_group_id from {TABLE} r join touched t using (order_no)
                       where r.repeat_group_id is not null)
            select order_no from touched where order_no in (select order_no from {STATE})
            union
            select r.order_no from {TABLE} r join groups g using (repeat_group_id)
            where r.order_no in (select order_no from {STATE})""")
        rows = _groups_of(con.sql(f"""
            select s.order_no, s.caller_link, s.text_link, s.reason from {STATE} s
            join repeat_regrouped using (order_no) order by s.received_at, s.order_no""").to_arrow_table())
        con.execute(f"""
            create or replace temp table repeat_resuggested as
            select order_no from repeat_regrouped
            union select order_no from repeat_merge_changed
            union select r.order_no from {TABLE} r join repeat_merge_changed m on m.order_no = r.first_order_no""")
        store.delete_orphans(con, TABLE, "marts.fct_work_orders")
        con.register("repeat_group_rows", rows)
        con.execute(f"delete from {TABLE} where order_no in (select order_no from repeat_group_rows)")
        con.execute(f"insert into {TABLE} select * from repeat_group_rows")
        con.unregister("repeat_group_rows")
        store.delete_orphans(con, SUGGESTIONS, "marts.fct_work_orders")
        con.execute(f"delete from {SUGGESTIONS} where order_no in (select order_no from repeat_resuggested)")
        con.execute(f"insert into {SUGGESTIONS} {_suggestions_sql(settings, 'repeat_resuggested')}")
        _write_vocabulary(con, settings, terms, documents, total)
    return {"mode": "incremental", "orders": total, "changed_orders": _count(con, "repeat_changed"),
            "moved_fingerprints": len(moved_orders), "relinked_orders": _count(con, "repeat_affected"),
            "linker_orders": len(context), "regrouped_orders": len(rows),
            "resuggested_orders": _count(con, "repeat_resuggested")}


def _groups_of(members: pa.Table) -> pa.Table:
    """The contract rows of orders (in linker order) whose links all stay among them: connected
    components, each led by its earliest order."""
    order_nos = members["order_no"].to_pylist()
    n = len(order_nos)
    index = {order_no: i for i, order_no in enumerate(order_nos)}
    sources, targets = [], []
    for column in ("caller_link", "text_link"):
        for i, target in enumerate(members[column].to_pylist()):
            if target is not None:
                if target not in index:
                    raise RuntimeError(f"repeat link {order_nos[i]} -> {target} leaves the regrouped orders")
                sources.append(i)
                targets.append(index[target])
    if n:
        graph = sparse.coo_matrix((np.ones(len(sources)), (sources, targets)), shape=(n, n))
        labels = connected_components(graph, directed=True, connection="weak")[1]
    else:
        labels = np.zeros(0, dtype=np.int64)
    first = np.full(labels.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n))
    root = first[labels]
    grouped = np.bincount(labels)[labels] > 1 if n else np.zeros(0, dtype=bool)
    names = np.array(order_nos, dtype=object)
    leader = np.where(grouped, names[root], None)
    reasons = members["reason"].to_pylist()
    return pa.table({
        "order_no": pa.array(order_nos, pa.string()),
        "repeat_group_id": pa.array(leader.tolist(), pa.string()),
        "is_repeat": pa.array((grouped & (root != np.arange(n))).tolist(), pa.bool_()),
        "match_reason": pa.array([REASONS.get(r) if g else None for r, g in zip(reasons, grouped.tolist(), strict=True)],
                                 pa.string()),
        "first_order_no": pa.array(leader.tolist(), pa.string()),
    })


def evaluate(predicted: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Order-level precision/recall of is_repeat, and pairwise precision/recall of the groups,
    against truth (order_no, repeat_of, repeat_group) on the orders both contain."""
    merged = predicted.merge(truth[["order_no", "repeat_of", "repeat_group"]], on="order_no")
    true_repeat = merged["repeat_of"].notna()
    pred_repeat = merged["is_repeat"].astype(bool)
    tp = int((true_repeat & pred_repeat).sum())

    def pairs(group_column: str) -> set[tuple[str, str]]:
        out = set()
        for _, members in merged[merged[group_column].notna()].groupby(group_column)["order_no"]:
            m = sorted(members)
            out.update((a, b) for i, a in enumerate(m) for b in m[i + 1:])
        return out

    predicted_pairs, true_pairs = pairs("repeat_group_id"), pairs("repeat_group")
    common = len(predicted_pairs & true_pairs)
    return {"orders": len(merged), "true_repeats": int(true_repeat.sum()), "predicted_repeats": int(pred_repeat.sum()),
            "precision": tp / int(pred_repeat.sum()) if pred_repeat.any() else None,
            "recall": tp / int(true_repeat.sum()) if true_repeat.any() else None,
            "pair_precision": common / len(predicted_pairs) if predicted_pairs else None,
            "pair_recall": common / len(true_pairs) if true_pairs else None}
