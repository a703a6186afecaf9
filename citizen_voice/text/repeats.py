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
"""

from __future__ import annotations

import gc
import hashlib
from array import array
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import sparse

from citizen_voice.text import store
from citizen_voice.text.tokens import SCHEMA, TEXTS, ensure_schema
from citizen_voice.text.tokens import TABLE as TOKENS

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
    raw = np.frombuffer(b"".join(hashlib.blake2b(t.encode(), digest_size=8).digest() for t in vocabulary),
                        dtype=">u8").astype(np.uint64)
    bits = (raw[:, None] >> np.arange(BITS, dtype=np.uint64)) & np.uint64(1)
    return bits.astype(np.float32) * 2 - 1


def simhash(token_docs: list[str], corpus: dict[str, tuple[int, int]] | None = None,
            documents: int | None = None) -> np.ndarray:
    """64-bit SimHash per document (idf-weighted token set), as uint64.

    The idf comes from `corpus` (term -> (document frequency, rank of its first occurrence)) over
    `documents` documents, a corpus the documents are part of; by default from the documents
    themselves. Terms are summed in order of first occurrence, so a document's fingerprint (float32
    sums) does not depend on how the corpus is cut into batches."""
    if corpus is None:
        first: dict[str, int] = {}
        for joined in token_docs:
            for token in sorted(set(joined.split())) if joined else ():
                first.setdefault(token, len(first))
        terms = list(first)
    else:
        terms = sorted({token for joined in token_docs if joined for token in joined.split()},
                       key=lambda term: corpus[term][1])
    if not terms:
        return np.zeros(len(token_docs), dtype=np.uint64)
    index = {term: i for i, term in enumerate(terms)}
    indptr, cols = array("q", [0]), array("i")  # typed arrays: a few bytes per token, not Python objects
    for joined in token_docs:
        if joined:
            cols.extend(map(index.__getitem__, set(joined.split())))
        indptr.append(len(cols))
    matrix = sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), np.frombuffer(cols, dtype=np.int32),
                                np.frombuffer(indptr, dtype=np.int64)), shape=(len(token_docs), len(terms)))
    matrix.sort_indices()  # each row's terms summed in term order
    if corpus is None:
        df = np.asarray(matrix.sum(axis=0)).ravel()
        documents = len(token_docs)
    else:
        df = np.array([corpus[t][0] for t in terms], dtype=np.float32)
    idf = np.log((1 + documents) / (1 + df)) + 1
    sums = (matrix @ sparse.diags(idf.astype(np.float32))) @ _token_bits(terms)
    # bit b of a fingerprint is set when the weighted sum of bit b is positive
    return np.packbits(np.asarray(sums) > 0, axis=1, bitorder="little").view("<u8").ravel().astype(np.uint64)


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
        self.linked_to = array("q", [-1]) * total  # the earlier order an order was first linked to
        self.reason = bytearray(total)  # SAME_CALLER | SIMILAR_TEXT bits
        self._callers = _Window(settings.caller_window_days * 86400)  # caller_key -> (position, time, l2, community)
        self._buckets = _Window(settings.text_window_days * 86400)  # (place, band, value) -> (position, time, fp)

    def _find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def _link(self, later: int, earlier: int, reason: int) -> None:
        a, b = self._find(later), self._find(earlier)
        if a != b:
            self.parent[max(a, b)] = min(a, b)
        self.reason[later] |= reason
        if self.linked_to[later] < 0:
            self.linked_to[later] = earlier

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


def refresh(con, settings: RepeatSettings = RepeatSettings()) -> dict:
    """Recompute text.repeat_demands and text.merge_suggestions (idempotent). The orders stream through
    the linker `store.TEXT_BATCH` at a time; the groups are written back by position in SQL."""
    ensure_schema(con)
    total = con.execute("select count(*) from marts.fct_work_orders").fetchall()[0][0]
    # per term: in how many orders it occurs and the rank of its first occurrence (the SimHash idf and
    # summing order); one entry per term, whatever the number of orders
    corpus = {term: (documents, rank) for term, documents, rank in con.execute(f"""
        select term, documents, row_number() over (order by first_order, term) as rank from (
            select term, count(*) as documents, min({{'received_at': received_at, 'order_no': order_no}}) as first_order
            from (select f.received_at, f.order_no, unnest(list_distinct(string_split(k.tokens, ' '))) as term
                  from marts.fct_work_orders f join {TOKENS} k on k.order_no = f.order_no where k.tokens <> '')
            group by term)""").fetchall()}
    linker = RepeatLinker(total, settings)
    for batch in store.read_batches(con, f"""
            select f.received_at, f.demand_type_code, f.caller_key, t.category_l2_code, f.street_code,
                   f.community_code, coalesce(k.tokens, '') as tokens
            from marts.fct_work_orders f
            left join {TEXTS} t on t.order_no = f.order_no
            left join {TOKENS} k on k.order_no = f.order_no
            {ORDERED}"""):
        tokens = batch["tokens"].to_pylist()
        linker.add(_received_seconds(batch["received_at"].to_pandas()), batch["demand_type_code"].to_pylist(),
                   batch["caller_key"].to_pylist(), batch["category_l2_code"].to_pylist(),
                   batch["street_code"].to_pylist(), batch["community_code"].to_pylist(), tokens,
                   simhash(tokens, corpus, total).tolist())
    root, grouped = linker.groups()
    positions = np.flatnonzero(grouped)
    links = pa.table({"pos": positions, "group_pos": root[positions],
                      "reason": np.frombuffer(linker.reason, dtype=np.uint8)[positions]})
    con.execute("begin")
    try:
        con.register("repeat_links", links)
        reasons = " ".join(f"when {code} then '{name}'" for code, name in REASONS.items())
        con.execute(f"""
            create or replace table {TABLE} as
            with positions as (
                select f.order_no, row_number() over ({ORDERED}) - 1 as pos from marts.fct_work_orders f
            )
            select o.order_no::varchar as order_no, g.order_no::varchar as repeat_group_id,
                   coalesce(l.group_pos <> l.pos, false) as is_repeat,
                   (case l.reason {reasons} end)::varchar as match_reason,
                   g.order_no::varchar as first_order_no
            from positions o
            left join repeat_links l on l.pos = o.pos
            left join positions g on g.pos = l.group_pos
            order by o.order_no""")
        con.unregister("repeat_links")
        con.execute(f"""
            create or replace table {SUGGESTIONS} as
            select r.order_no, r.first_order_no as suggested_parent_order_no, r.match_reason,
                   round(date_diff('second', p.received_at, o.received_at) / 3600.0, 1) as hours_after_parent,
                   coalesce(o.parent_order_no = r.first_order_no, false) as already_merged
            from {TABLE} r
            join marts.fct_work_orders o on o.order_no = r.order_no
            join marts.fct_work_orders p on p.order_no = r.first_order_no
            where r.is_repeat
              and (p.closed_at is null or p.closed_at > o.received_at)
              and o.received_at <= p.received_at + interval {int(settings.merge_window_hours)} hour
            order by r.order_no""")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    repeats, groups = con.execute(f"select count(*) filter (where is_repeat), count(distinct repeat_group_id) "
                                  f"from {TABLE}").fetchall()[0]
    suggestions = con.execute(f"select count(*), count(*) filter (where already_merged) from {SUGGESTIONS}").fetchall()[0]
    return {"orders": total, "repeat_orders": repeats, "groups": groups,
            "repeat_rate": round(repeats / total, 4) if total else None,
            "merge_suggestions": suggestions[0], "merge_suggestions_already_merged": suggestions[1]}


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
